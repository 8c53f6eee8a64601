"""Restart awareness in the core: which container restarts are news, and when one is captured."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from spikeprof import captures
from spikeprof.core import catalog, restarts
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import build_metadata
from spikeprof.core.endpoints import Endpoint
from spikeprof.core.planner import Progress
from spikeprof.core.pods import ContainerRun, PodInfo, pod_info
from spikeprof.core.restarts import RestartFindings, RestartRecord
from spikeprof.core.results import CaptureOutcome, PodOutcome, ProfileOutcome
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import OnRestart, SpecError, parse_spec
from spikeprof.core.status import Arming, Look, capture_finished, next_status

CREATED = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.UTC)
NOW = CREATED + datetime.timedelta(minutes=5)
OOM = OnRestart(reasons=("OOMKilled",), after=30.0)
PREVIOUS = {
    "id": "20261126T010200.000Z-threshold",
    "result": "Succeeded",
    "artifacts": ["shop/checkout/web-1/20261126T010200.000Z-threshold"],
}


def status_look(restarts: RestartFindings) -> Look:
    return Look(
        generation=1,
        now=NOW,
        namespace="shop",
        selector="app=web",
        matched=1,
        reachable=1,
        capturing=False,
        expired=False,
        arming=Arming(ready=True),
        access="direct",
        port_forward_missing=None,
        restarts=restarts,
    )


def web(
    count: int,
    *,
    reason: str | None = "OOMKilled",
    finished: str = "2026-11-26T01:04:50Z",
    started: str | None = "2026-11-26T01:04:52Z",
    created: str = "2026-11-26T00:30:00Z",
) -> PodInfo:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": "shop",
            "name": "web-1",
            "uid": "u1",
            "creationTimestamp": created,
        },
        "spec": {"containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": count,
                    "state": {"running": {"startedAt": started}} if started else {},
                    "lastState": (
                        {"terminated": {"reason": reason, "exitCode": 137, "finishedAt": finished}}
                        if count
                        else {}
                    ),
                }
            ],
        },
    }
    return pod_info(body)


def scan(
    seen: dict[str, int], *pods: PodInfo, on_restart: OnRestart | None = OOM
) -> RestartFindings:
    return restarts.scan(
        seen,
        pods,
        session_created=CREATED,
        now=NOW,
        on_restart=on_restart,
        recent_captures=[PREVIOUS],
    )


def test_pod_info_reads_each_containers_restart_count_and_last_exit() -> None:
    assert web(2).runs == (
        ContainerRun(
            name="app",
            restart_count=2,
            last_reason="OOMKilled",
            last_exit_code=137,
            last_finished_at="2026-11-26T01:04:50Z",
            started_at="2026-11-26T01:04:52Z",
        ),
    )
    assert web(2).created == "2026-11-26T00:30:00Z"


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "c2", "result": "Succeeded", "capturedPods": ["web-2", "web-1"]},
        # As entries were written before capturedPods: artifact directories.
        {"id": "c2", "result": "Succeeded", "artifacts": ["shop/checkout/web-1/c2"]},
    ],
)
def test_the_previous_capture_is_the_newest_that_did_not_fail_with_the_pod(
    entry: dict[str, Any],
) -> None:
    failed = {"id": "c3", "result": "Failed", "capturedPods": ["web-1"]}
    other = {"id": "c1", "result": "Succeeded", "capturedPods": ["web-2"]}
    assert restarts.last_capture_of("web-1", [failed, entry, other, PREVIOUS]) == "c2"
    assert restarts.last_capture_of("web-3", [failed, entry, other]) is None


def test_a_restart_count_that_grew_is_recorded_with_reason_exit_code_and_previous_capture() -> None:
    findings = scan({"u1/app": 1}, web(2))
    assert findings.seen == {"u1/app": 2}
    (record,) = findings.found
    assert record == RestartRecord(
        time="2026-11-26T01:05:00Z",
        pod="web-1",
        pod_uid="u1",
        container="app",
        restart_count=2,
        reason="OOMKilled",
        exit_code=137,
        finished_at="2026-11-26T01:04:50Z",
        previous_capture="20261126T010200.000Z-threshold",
        capture_due="2026-11-26T01:05:22Z",  # started again at 01:04:52, plus 30s
    )


def test_restarts_before_the_session_existed_are_a_baseline_not_news() -> None:
    old = web(3, finished="2026-11-26T00:45:00Z")
    findings = scan({}, old)
    assert findings.found == ()
    assert findings.seen == {"u1/app": 3}
    # ... and the next restart is news.
    assert [r.restart_count for r in scan(dict(findings.seen), web(4)).found] == [4]


def test_a_count_the_session_has_already_seen_is_not_reported_again() -> None:
    assert scan({"u1/app": 2}, web(2)).found == ()


def test_a_new_pods_first_restart_counts_even_before_the_session_saw_it() -> None:
    young = web(1, finished="2026-11-26T01:04:00Z", created="2026-11-26T01:03:00Z")
    assert [r.restart_count for r in scan({}, young).found] == [1]


def test_containers_that_never_restarted_and_pods_no_longer_selected_are_not_remembered() -> None:
    assert scan({"gone-uid/app": 4}, web(0)).seen == {}


def test_a_reason_onrestart_does_not_list_is_recorded_without_a_capture() -> None:
    (record,) = scan({"u1/app": 0}, web(1, reason="Error")).found
    assert record.reason == "Error" and record.capture_due is None and not record.waiting
    (anything,) = scan({"u1/app": 0}, web(1, reason="Error"), on_restart=OnRestart()).found
    assert anything.capture_due is not None
    (unwatched,) = scan({"u1/app": 0}, web(1), on_restart=None).found
    assert unwatched.capture_due is None


def test_the_event_says_what_restarted_and_what_follows() -> None:
    (record,) = scan({"u1/app": 1}, web(2)).found
    assert restarts.event_message(record, NOW) == (
        "Container app of pod web-1 restarted (OOMKilled, exit code 137); restart count 2; "
        "trigger.onRestart captures it in 22s; its last capture before the restart is "
        "20261126T010200.000Z-threshold."
    )


def test_a_waiting_restart_is_due_after_its_warm_up_while_its_pod_is_ready() -> None:
    (record,) = scan({"u1/app": 1}, web(2)).found
    pod = web(2)
    assert restarts.due([record], [pod], [pod], NOW) == ([], {})
    later = NOW + datetime.timedelta(seconds=22)
    assert restarts.due([record], [pod], [pod], later) == ([record], {})
    # Not ready yet: it waits; deleted: it is given up, saying why.
    assert restarts.due([record], [], [pod], later) == ([], {})
    ripe, given_up = restarts.due([record], [], [], later)
    assert ripe == [] and given_up[record.key].startswith("PodGone")
    # onRestart taken out of the spec: nothing waits for it any more.
    ripe, given_up = restarts.due([record], [pod], [pod], later, wanted=False)
    assert ripe == [] and given_up[record.key].startswith("NotWanted")


def test_status_keeps_the_newest_restarts_but_never_drops_one_still_waiting() -> None:
    waiting = RestartRecord("t", "web-0", "u0", "app", 1, capture_due="2026-11-26T01:00:00Z")
    older = [RestartRecord("t", f"web-{i}", f"u{i}", "app", 1) for i in range(1, 15)]
    new = RestartRecord("t", "web-new", "un", "app", 1)
    kept = restarts.recorded([*older, waiting], RestartFindings({}, (new,)))
    assert len(kept) == restarts.RECENT_RESTARTS
    assert kept[0] == new and waiting in kept


def test_next_status_records_restarts_and_their_counts() -> None:
    findings = scan({"u1/app": 1}, web(2))
    after = next_status(SessionStatus(), status_look(restarts=findings))
    assert after.restarts_seen == {"u1/app": 2}
    assert [r.restart_count for r in after.restarts] == [2]
    rendered = after.render()["restarts"][0]
    assert rendered["reason"] == "OOMKilled" and rendered["exitCode"] == 137
    settled = RestartFindings(after.restarts_seen, settled={after.restarts[0].key: "Cooldown: x"})
    again = next_status(after, status_look(restarts=settled))
    assert again.restarts[0].outcome == "Cooldown: x"


def test_the_restart_capture_is_recorded_on_its_restart_and_metadata_names_the_previous() -> None:
    (record,) = scan({"u1/app": 1}, web(2)).found
    request = restarts.restart_capture([record], NOW + datetime.timedelta(seconds=30))
    assert request.trigger == "restart" and request.pods == ("web-1",)
    assert request.id.endswith("Z-restart")
    assert "OOMKilled, exit code 137" in request.reason
    heap = ProfileOutcome("heap", file="heap.pb.gz", bytes=1, sha256="x")
    outcome = CaptureOutcome(request, (PodOutcome("web-1", None, "d", (heap,)),))
    status = SessionStatus(restarts=(record,))
    done = capture_finished(
        status,
        outcome,
        Progress(False, None, None),
        generation=1,
        now=NOW,
        cooldown=600,
        reachable=1,
        uploading_to=None,
    )
    assert done.restarts[0].capture == request.id and not done.restarts[0].waiting
    metadata = build_metadata(
        key=ArtifactKey("shop", "checkout", "web-1", request.id),
        request=request,
        pod=web(2),
        endpoint=Endpoint("http://10.0.0.1:6060/debug/pprof", "app", "direct"),
        requests=(),
        outcomes=(),
        finished_at=NOW,
        operator_version="test",
    )
    assert metadata["previousCapture"] == "20261126T010200.000Z-threshold"
    assert metadata["restart"] == {
        "time": "2026-11-26T01:05:00Z",
        "container": "app",
        "restartCount": 2,
        "reason": "OOMKilled",
        "exitCode": 137,
        "finishedAt": "2026-11-26T01:04:50Z",
    }


def test_captures_show_names_the_restart_and_prints_the_diff_against_the_previous() -> None:
    (record,) = scan({"u1/app": 1}, web(2)).found
    request = restarts.restart_capture([record], NOW)
    key = ArtifactKey("shop", "checkout", "web-1", request.id)
    metadata = build_metadata(
        key=key,
        request=request,
        pod=web(2),
        endpoint=Endpoint("http://10.0.0.1:6060/debug/pprof", "app", "direct"),
        requests=(),
        outcomes=(),
        finished_at=NOW,
        operator_version="test",
    )
    lines = captures.describe_capture(catalog.capture_from_metadata(key, metadata, {}), top=5)
    assert "Restart:   container app (OOMKilled, exit code 137), restart count 2" in lines
    before = "shop/checkout/web-1/20261126T010200.000Z-threshold"
    assert f"Previous:  {before}" in lines
    assert f"Compare:   spikeprof captures diff {before} {key.relative_path}" in lines


def test_spec_trigger_onrestart_is_parsed_with_defaults() -> None:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": [{"type": "heap"}],
        "output": {"volume": {}},
    }
    parsed = parse_spec(
        {**base, "trigger": {"onRestart": {"reasons": ["OOMKilled"], "after": "1m"}}}
    )
    assert parsed.trigger.on_restart == OnRestart(("OOMKilled",), 60.0)
    assert parse_spec({**base, "trigger": {"onRestart": {}}}).trigger.on_restart == OnRestart(
        (), 30.0
    )
    assert parse_spec(base).trigger.on_restart is None


@pytest.mark.parametrize(
    ("on_restart", "message"),
    [
        ("yes", "spec.trigger.onRestart must be an object"),
        ({"reasons": ["OOM Killed"]}, "spec.trigger.onRestart.reasons must list"),
        ({"reasons": "OOMKilled"}, "spec.trigger.onRestart.reasons must list"),
        ({"after": "soon"}, "spec.trigger.onRestart.after: 'soon' is not a duration"),
        ({"after": "2h"}, "spec.trigger.onRestart.after must be a duration up to 1h"),
    ],
)
def test_a_bad_onrestart_is_refused_naming_the_field(on_restart: Any, message: str) -> None:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": [{"type": "heap"}],
        "output": {"volume": {}},
        "trigger": {"onRestart": on_restart},
    }
    with pytest.raises(SpecError, match="^" + message.replace(".", r"\.")):
        parse_spec(base)
