"""The one-shot session `kubectl spikeprof capture` creates, and what its status says."""

from __future__ import annotations

from spikeprof.core import one_shot
from spikeprof.core.selector import LabelSelector
from spikeprof.core.spec import parse_spec


def test_the_session_selects_the_named_pod_only_and_captures_once_at_creation() -> None:
    body = one_shot.session_body(
        "checkout-7d9f-abcde",
        [{"type": "cpu", "duration": "1s"}, {"type": "heap"}],
        one_shot.Target(kind="pprof", port=7777),
        {"volume": {}},
    )
    assert body["metadata"] == {
        "generateName": "capture-checkout-7d9f-abcde-",
        "labels": {"spikeprof.io/one-shot": "true"},
    }
    spec = body["spec"]
    assert spec["selector"] == {"podNames": ["checkout-7d9f-abcde"]}
    assert spec["target"] == {"kind": "pprof", "port": 7777}
    assert spec["trigger"] == {"immediate": True}
    parsed = parse_spec(spec)  # the operator accepts it as it is
    assert parsed.trigger.immediate
    assert parsed.selector == LabelSelector((), (), None, frozenset({"checkout-7d9f-abcde"}))


def test_a_long_or_dotted_pod_name_gives_a_valid_name_prefix() -> None:
    body = one_shot.session_body("a.b_" + "x" * 300, [{"type": "heap"}], one_shot.Target(), {})
    prefix = body["metadata"]["generateName"]
    assert prefix.startswith("capture-a-b-x")
    assert len(prefix) <= 58 and prefix.endswith("-") and not prefix.endswith("--")
    assert body["spec"]["target"] == {}


def test_sampling_time_is_the_longest_sampled_profile() -> None:
    assert one_shot.sampling_seconds([{"type": "heap"}]) == 0
    profiles = [{"type": "cpu", "duration": "10s"}, {"type": "trace", "duration": "1m"}]
    assert one_shot.sampling_seconds([*profiles, {"type": "goroutine"}]) == 60


def test_a_session_without_status_waits_for_the_operator() -> None:
    assert one_shot.read_state(None) == one_shot.State("waiting")
    assert one_shot.read_state({"phase": "Pending"}).stage == "waiting"


def test_a_pending_capture_is_capturing() -> None:
    state = one_shot.read_state({"phase": "Capturing", "pendingCapture": {"id": "x"}})
    assert state.stage == "capturing"


def test_a_finished_capture_gives_its_result_artifacts_and_failures() -> None:
    status = {
        "captures": {"total": 1, "failed": 1},
        "lastCapture": {
            "id": "20260102T030405.000Z-immediate",
            "result": "PartiallyFailed",
            "artifacts": ["ns/s/web-1/20260102T030405.000Z-immediate"],
            "failures": [
                {"pod": "web-1", "type": "cpu", "reason": "Timeout", "message": "no answer in 30s"}
            ],
        },
    }
    state = one_shot.read_state(status)
    assert state.stage == "done"
    assert state.outcome is not None
    assert not state.outcome.succeeded
    assert state.outcome.artifacts == ("ns/s/web-1/20260102T030405.000Z-immediate",)
    assert [f.describe() for f in state.outcome.failures] == [
        "web-1 cpu: Timeout, no answer in 30s"
    ]


def test_why_a_session_waits_or_failed_comes_from_its_false_conditions() -> None:
    conditions = [
        {"type": "Ready", "status": "False", "message": "No pod is ready to profile."},
        {"type": "TargetsReachable", "status": "False", "message": "No pod matches pod web-9."},
        {"type": "MetricsAvailable", "status": "True", "message": "fine"},
    ]
    waiting = one_shot.read_state({"phase": "Pending", "conditions": conditions})
    assert waiting.reason == "No pod matches pod web-9. No pod is ready to profile."
    failed = one_shot.read_state({"phase": "Failed", "conditions": conditions[:1]})
    assert (failed.stage, failed.reason) == ("failed", "No pod is ready to profile.")


def test_with_an_object_store_a_capture_is_done_once_uploaded() -> None:
    last = {"id": "c", "result": "Succeeded", "artifacts": ["ns/s/p/c"]}
    uploading = {
        "type": "ArtifactsUploaded",
        "status": "False",
        "reason": "Uploading",
        "message": "Capture c is on its way to s3://b/p.",
    }
    status = {"captures": {"total": 1}, "lastCapture": last, "conditions": [uploading]}
    state = one_shot.read_state(status, uploads=True)
    assert (state.stage, state.reason) == ("uploading", "Capture c is on its way to s3://b/p.")
    assert one_shot.read_state(status).stage == "done"  # the volume has it already
    status["conditions"] = [{**uploading, "status": "True", "message": "All uploaded."}]
    assert one_shot.read_state(status, uploads=True).stage == "done"
