"""Status as people read it: conditions keep their transition time, captures stay bounded."""

from __future__ import annotations

import dataclasses
import datetime

from spikeprof.core.planner import CaptureRequest, Progress
from spikeprof.core.results import (
    CaptureOutcome,
    FailureReason,
    PodOutcome,
    ProfileError,
    ProfileOutcome,
)
from spikeprof.core.session_status import Condition, SessionStatus
from spikeprof.core.status import (
    RECENT_CAPTURES,
    Arming,
    Look,
    Verdict,
    capture_finished,
    capture_started,
    next_status,
    port_forward_conditions,
    set_condition,
)

T0 = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition((), "Ready", Verdict(True, "A", "a"), generation=1, now=T0)
    same = set_condition(first, "Ready", Verdict(True, "B", "b"), generation=2, now=T1)
    assert same[0].last_transition_time == "2026-11-26T01:00:00Z"
    assert (same[0].reason, same[0].observed_generation) == ("B", 2)
    flipped = set_condition(same, "Ready", Verdict(False, "C", "c"), generation=2, now=T1)
    assert flipped[0].last_transition_time == "2026-11-26T01:01:00Z"


def _look(matched: int, reachable: int, **changes: object) -> Look:
    look = Look(
        generation=3,
        now=T0,
        namespace="shop",
        selector="app=web",
        matched=matched,
        reachable=reachable,
        capturing=False,
        expired=False,
        arming=Arming(ready=True),
        access="direct",
        port_forward_missing=None,
    )
    return dataclasses.replace(look, **changes)


def test_observation_says_why_no_pod_is_reachable() -> None:
    status = next_status(SessionStatus(), _look(2, 0)).render()
    assert status["phase"] == "Pending"
    assert status["targets"] == {"matched": 2, "reachable": 0, "summary": "0/2"}
    reachable = next(c for c in status["conditions"] if c["type"] == "TargetsReachable")
    assert reachable["status"] == "False"
    assert reachable["reason"] == "PodsNotReady"
    assert (
        reachable["message"] == "2 pod(s) match app=web, but none is running and ready with an IP."
    )
    none = next_status(SessionStatus(), _look(0, 0)).render()
    assert "No pod in this namespace matches app=web." in str(none["conditions"])


def test_a_look_that_finds_nothing_new_writes_nothing() -> None:
    first = next_status(SessionStatus(), _look(2, 2))
    again = next_status(SessionStatus.parse(first.render()), _look(2, 2, now=T1))
    assert first.patch_to(again) == {}


def test_a_session_waiting_for_its_pods_to_be_armed_says_arming() -> None:
    arming = Arming(
        ready=False, profiling=Verdict(False, "Arming", "waiting"), workloads=("Deployment/web",)
    )
    status = next_status(SessionStatus(), _look(1, 1, arming=arming))
    assert status.phase == "Arming"
    assert status.armed_workloads == ("Deployment/web",)
    assert status.condition("ProfilingEnabled") is not None
    disarmed = next_status(status, _look(1, 1, arming=Arming(ready=True, disarmed=True)))
    assert status.patch_to(disarmed)["armedWorkloads"] is None


def _outcome(i: int, failed: bool) -> CaptureOutcome:
    request = CaptureRequest(f"id-{i:02d}", "capture-now", "r", T0, token=str(i))
    failure = ProfileError(FailureReason.TIMEOUT, "slow") if failed else None
    profiles = (
        ProfileOutcome("heap", file="heap.pb.gz", bytes=10, sha256="x"),
        ProfileOutcome("cpu", failure=failure)
        if failed
        else ProfileOutcome("cpu", file="cpu.pb.gz"),
    )
    return CaptureOutcome(request, (PodOutcome("web-1", "n", "ns/s/web-1/id", profiles),))


def test_counters_add_up_and_recent_captures_stay_bounded() -> None:
    status = SessionStatus()
    progress = Progress(immediate_done=False, capture_now_handled=None, pending=None)
    for i in range(RECENT_CAPTURES + 5):
        outcome = _outcome(i, failed=i % 2 == 1)
        status = capture_started(status, outcome.request)
        status = capture_finished(
            status,
            outcome,
            progress,
            generation=1,
            now=T0,
            cooldown=0.0,
            reachable=1,
            uploading_to=None,
        )
    rendered = status.render()
    captures = rendered["captures"]
    assert captures == {"total": 15, "failed": 7, "profiles": 23, "profilesFailed": 7}
    recent = rendered["recentCaptures"]
    assert isinstance(recent, list) and len(recent) == RECENT_CAPTURES
    assert recent[0]["id"] == "id-14"
    # lastCapture says where the artifacts are; recent entries name the pods (a smaller status).
    assert rendered["lastCapture"]["artifacts"] == ["ns/s/web-1/id"]
    assert all(c["capturedPods"] == ["web-1"] and "artifacts" not in c for c in recent)
    assert "pendingCapture" not in rendered
    assert rendered["phase"] == "Armed"


def test_a_finished_capture_patches_away_its_pending_entry_and_alerts() -> None:
    request = CaptureRequest("id-a", "alert", "r", T0, alert_keys=("k1",))
    before = SessionStatus.parse(
        {"pendingAlerts": {"k1": {"alert": "A"}, "k2": {"alert": "B"}}, "phase": "Armed"}
    )
    started = capture_started(before, request)
    assert before.patch_to(started) == {"phase": "Capturing", "pendingCapture": request.to_status()}
    progress = Progress(immediate_done=False, capture_now_handled=None, pending=None)
    finished = capture_finished(
        started,
        CaptureOutcome(request, problem="no pods"),
        progress,
        generation=1,
        now=T0,
        cooldown=0.0,
        reachable=0,
        uploading_to=None,
    )
    patch = started.patch_to(finished)
    assert patch["pendingCapture"] is None
    assert patch["pendingAlerts"] == {"k1": None}
    assert patch["alertsHandled"] == ["k1"]


def test_a_partly_failed_capture_names_its_failures_grouped_by_reason() -> None:
    outcome = _outcome(1, failed=True)
    assert outcome.result == "PartiallyFailed"
    assert outcome.summary() == (
        "Capture id-01 (capture-now) took 1 profile(s) from 1 pod(s); 1 failed: 1 Timeout (web-1/cpu)."
    )
    entry = outcome.to_status()
    assert entry["failures"] == [
        {"pod": "web-1", "type": "cpu", "reason": "Timeout", "message": "slow"}
    ]
    assert entry["profiles"] == {"succeeded": 1, "failed": 1}


def test_a_capture_without_pods_fails_with_its_reason() -> None:
    request = CaptureRequest("id", "immediate", "r", T0)
    outcome = CaptureOutcome(request, problem="no selected pod is running and ready")
    assert outcome.result == "Failed"
    assert (
        outcome.summary() == "Capture id (immediate) failed: no selected pod is running and ready."
    )


def _port_forward(
    conditions: tuple[Condition, ...], access: str, missing: list[str] | None
) -> tuple[Condition, ...]:
    return port_forward_conditions(
        conditions, access=access, missing=missing, namespace="shop", generation=3, now=T0
    )


def test_port_forward_denied_says_what_fails_and_how_to_grant_it() -> None:
    [denied] = _port_forward((), "portForward", ["create"])
    assert (denied.type, denied.status, denied.reason) == ("PortForwardAllowed", False, "Forbidden")
    assert "lacks create on pods/portforward in shop: every capture would fail" in denied.message
    assert "rbac.portForward=true" in denied.message
    [auto] = _port_forward((), "auto", ["create", "get"])
    assert "lacks create and get" in auto.message
    assert "pods whose IP does not answer cannot be captured" in auto.message


def test_port_forward_condition_is_kept_while_unknown_and_dropped_for_direct() -> None:
    ready = Condition.parse({"type": "Ready", "status": "True"})
    allowed = _port_forward((ready,), "auto", [])
    by_type = {c.type: c for c in allowed}
    assert set(by_type) == {"Ready", "PortForwardAllowed"}
    assert by_type["PortForwardAllowed"].reason == "Allowed"
    assert _port_forward(allowed, "auto", None) == allowed
    assert [c.type for c in _port_forward(allowed, "direct", None)] == ["Ready"]
