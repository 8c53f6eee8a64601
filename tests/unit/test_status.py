"""Status as people read it: conditions keep their transition time, captures stay bounded."""

from __future__ import annotations

import datetime

from spikeprof.core.planner import CaptureRequest, Progress
from spikeprof.core.results import (
    CaptureOutcome,
    FailureReason,
    PodOutcome,
    ProfileError,
    ProfileOutcome,
)
from spikeprof.core.status import (
    RECENT_CAPTURES,
    capture_done_patch,
    observation_patch,
    port_forward_conditions,
    set_condition,
)

T0 = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition(
        [], type="Ready", status=True, reason="A", message="a", generation=1, now=T0
    )
    same = set_condition(
        first, type="Ready", status=True, reason="B", message="b", generation=2, now=T1
    )
    assert same[0]["lastTransitionTime"] == "2026-11-26T01:00:00Z"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("B", 2)
    flipped = set_condition(
        same, type="Ready", status=False, reason="C", message="c", generation=2, now=T1
    )
    assert flipped[0]["lastTransitionTime"] == "2026-11-26T01:01:00Z"


def test_observation_says_why_no_pod_is_reachable() -> None:
    patch = observation_patch(
        {}, matched=2, reachable=0, capturing=False, selector="app=web", generation=3, now=T0
    )
    assert patch["phase"] == "Pending"
    assert patch["targets"] == {"matched": 2, "reachable": 0, "summary": "0/2"}
    reachable = next(c for c in patch["conditions"] if c["type"] == "TargetsReachable")
    assert reachable["status"] == "False"
    assert reachable["reason"] == "PodsNotReady"
    assert (
        reachable["message"] == "2 pod(s) match app=web, but none is running and ready with an IP."
    )
    none = observation_patch(
        {}, matched=0, reachable=0, capturing=False, selector="app=web", generation=3, now=T0
    )
    assert "No pod in this namespace matches app=web." in str(none["conditions"])


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
    status: dict[str, object] = {}
    progress = Progress(immediate_done=False, capture_now_handled=None, pending=None)
    for i in range(RECENT_CAPTURES + 5):
        status.update(capture_done_patch(status, _outcome(i, failed=i % 2 == 1), progress, 1, T0))
    captures = status["captures"]
    assert captures == {"total": 15, "failed": 7, "profiles": 23, "profilesFailed": 7}
    recent = status["recentCaptures"]
    assert isinstance(recent, list) and len(recent) == RECENT_CAPTURES
    assert recent[0]["id"] == "id-14"
    assert status["pendingCapture"] is None


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
    conditions: list[dict[str, object]], access: str, missing: list[str] | None
) -> list:
    return port_forward_conditions(
        conditions, access=access, missing=missing, namespace="shop", generation=3, now=T0
    )


def test_port_forward_denied_says_what_fails_and_how_to_grant_it() -> None:
    [denied] = _port_forward([], "portForward", ["create"])
    assert (denied["type"], denied["status"], denied["reason"]) == (
        "PortForwardAllowed",
        "False",
        "Forbidden",
    )
    assert "lacks create on pods/portforward in shop: every capture would fail" in denied["message"]
    assert "rbac.portForward=true" in denied["message"]
    [auto] = _port_forward([], "auto", ["create", "get"])
    assert "lacks create and get" in auto["message"]
    assert "pods whose IP does not answer cannot be captured" in auto["message"]


def test_port_forward_condition_is_kept_while_unknown_and_dropped_for_direct() -> None:
    allowed = _port_forward([{"type": "Ready", "status": "True"}], "auto", [])
    by_type = {c["type"]: c for c in allowed}
    assert set(by_type) == {"Ready", "PortForwardAllowed"}
    assert by_type["PortForwardAllowed"]["reason"] == "Allowed"
    assert _port_forward(allowed, "auto", None) == allowed
    assert [c["type"] for c in _port_forward(allowed, "direct", None)] == ["Ready"]
