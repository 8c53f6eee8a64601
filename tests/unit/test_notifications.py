"""What webhooks are told: the JSON document and Slack's incoming-webhook message, built from a
capture's outcome or a session's expiry, and the NotificationsDelivered verdict."""

from __future__ import annotations

import datetime
import json
from typing import Any

from spikeprof.core import notifications
from spikeprof.core.planner import CaptureRequest
from spikeprof.core.results import (
    CaptureOutcome,
    FailureReason,
    PodOutcome,
    ProfileError,
    ProfileOutcome,
)

WHEN = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.UTC)
HOSTILE = "<script>alert(1)</script> & <@here>"


def summary(*functions: tuple[str, int]) -> dict[str, Any]:
    """A profile summary as pprof.summary writes it into metadata.json."""
    total = sum(flat for _, flat in functions) or 1
    return {
        "defaultSampleType": "cpu",
        "sampleTypes": [
            {"type": "samples", "unit": "count", "total": 1, "functionCount": 0, "functions": []},
            {
                "type": "cpu",
                "unit": "nanoseconds",
                "total": total,
                "functionCount": len(functions),
                "functions": [
                    {
                        "function": name,
                        "flat": flat,
                        "flatPercent": round(flat / total * 100, 2),
                        "cum": flat,
                        "cumPercent": round(flat / total * 100, 2),
                    }
                    for name, flat in functions
                ],
            },
        ],
    }


def request(trigger: str = "threshold") -> CaptureRequest:
    return CaptureRequest(
        id="20261126T010000Z-threshold",
        trigger=trigger,
        reason="cpu 93% of limit for 30s",
        requested_at=WHEN,
    )


def outcome() -> CaptureOutcome:
    """Two pods: one with a CPU profile of seven functions, one whose heap profile failed."""
    functions = [(f"main.f{i}", 70 - i * 10) for i in range(7)]
    cpu = ProfileOutcome("cpu", file="cpu.pb.gz", bytes=10, summary=summary(*functions))
    failed = ProfileOutcome(
        "heap", failure=ProfileError(FailureReason.TIMEOUT, "no answer within 30s")
    )
    return CaptureOutcome(
        request(),
        (
            PodOutcome("web-1", "node-1", "shop/checkout/web-1/20261126T010000Z-threshold", (cpu,)),
            PodOutcome(
                "web-2", "node-1", "shop/checkout/web-2/20261126T010000Z-threshold", (failed,)
            ),
        ),
    )


def notice(ui_url: str | None = None) -> notifications.Notice:
    return notifications.capture_notice(
        "shop", "checkout", outcome(), artifacts_at="s3://bucket/profiles/", ui_url=ui_url
    )


def test_the_json_payload_holds_session_pods_reason_top_five_failures_and_artifacts() -> None:
    payload = notifications.json_payload(notice("https://spikeprof.example/"))
    assert json.loads(json.dumps(payload)) == payload  # plain JSON, nothing else
    assert payload["version"] == "1"
    assert payload["event"] == "CapturePartiallyFailed"
    assert payload["session"] == {"namespace": "shop", "name": "checkout"}
    assert payload["capture"] == {
        "id": "20261126T010000Z-threshold",
        "trigger": "threshold",
        "reason": "cpu 93% of limit for 30s",
        "time": "2026-11-26T01:00:00Z",
        "profiles": {"succeeded": 1, "failed": 1},
        "problem": None,
    }
    assert payload["pods"] == ["web-1", "web-2"]
    [top] = payload["top"]
    assert (top["pod"], top["profile"], top["sampleType"], top["unit"]) == (
        "web-1",
        "cpu",
        "cpu",
        "nanoseconds",
    )
    assert [f["function"] for f in top["functions"]] == [f"main.f{i}" for i in range(5)]
    assert top["functions"][0] == {"function": "main.f0", "flat": 70, "flatPercent": 25.0}
    assert payload["failures"] == [
        {"pod": "web-2", "profile": "heap", "reason": "Timeout", "message": "no answer within 30s"}
    ]
    assert payload["artifacts"] == [
        "s3://bucket/profiles/shop/checkout/web-1/20261126T010000Z-threshold",
        "s3://bucket/profiles/shop/checkout/web-2/20261126T010000Z-threshold",
    ]
    # Two pods: the session's captures; each pod's page is listed too (spikeprof.ui's routes).
    assert payload["link"] == "https://spikeprof.example/captures?namespace=shop&session=checkout"
    assert payload["podLinks"] == [
        f"https://spikeprof.example/capture/shop/checkout/{pod}/20261126T010000Z-threshold"
        for pod in ("web-1", "web-2")
    ]
    assert payload["summary"].startswith("shop/checkout: Capture 20261126T010000Z-threshold")


def test_without_a_ui_url_there_is_no_link_but_the_artifacts_are_named() -> None:
    payload = notifications.json_payload(notice())
    assert payload["link"] is None and payload["podLinks"] == []
    assert payload["artifacts"]


def test_a_capture_that_could_not_run_says_why() -> None:
    failed = CaptureOutcome(request(), problem="no selected pod is reachable")
    made = notifications.capture_notice(
        "shop", "checkout", failed, artifacts_at="/var/lib/spikeprof", ui_url=None
    )
    payload = notifications.json_payload(made)
    assert payload["event"] == "CaptureFailed"
    assert payload["capture"]["problem"] == "no selected pod is reachable"
    assert payload["pods"] == [] and payload["artifacts"] == []
    text = json.dumps(notifications.slack_payload(made))
    assert "no selected pod is reachable" in text


def test_the_expiry_payload_names_the_session_and_its_captures() -> None:
    made = notifications.expiry_notice(
        "shop",
        "checkout",
        captures=4,
        failed=1,
        artifacts_at="/var/lib/spikeprof",
        ui_url="http://ui:8081",
    )
    payload = notifications.json_payload(made)
    assert payload["event"] == "SessionExpired"
    assert payload["capture"] is None
    assert payload["summary"] == (
        "shop/checkout expired (limits.expiresAfter) after 4 capture(s), 1 failed; "
        "it captures nothing more."
    )
    assert payload["artifacts"] == ["/var/lib/spikeprof/shop/checkout"]
    assert payload["link"] == "http://ui:8081/captures?namespace=shop&session=checkout"


# Slack's incoming webhooks take a JSON body with `text` and, optionally, `blocks` (Block Kit):
# "You can use all the usual formatting and layout blocks with Incoming Webhooks", and with
# blocks, `text` is the fallback shown in notifications (api.slack.com/messaging/webhooks;
# api.slack.com/reference/messaging/payload). The limits below are Block Kit's, as
# slackapi/python-slack-sdk enforces them in slack_sdk/models/blocks/blocks.py (SectionBlock:
# text_max_length 3000, fields_max_length 10, 2000 per field; HeaderBlock: plain_text,
# text_max_length 150) and api.slack.com/reference/block-kit/blocks (at most 50 blocks in a
# message). Slack cannot be reached from here, so a message is checked against that shape.
SLACK_BLOCK_KEYS = {
    "header": {"type", "text"},
    "section": {"type", "text", "fields"},
    "context": {"type", "elements"},
}


def assert_slack_message(message: dict[str, Any]) -> None:
    assert set(message) == {"text", "blocks"}
    assert isinstance(message["text"], str) and message["text"]
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert set(block) <= SLACK_BLOCK_KEYS[kind], block
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] in ("mrkdwn", "plain_text")
                assert 1 <= len(block["text"]["text"]) <= 3000
            for field in block.get("fields", ()):
                assert field["type"] in ("mrkdwn", "plain_text")
                assert 1 <= len(field["text"]) <= 2000
            assert len(block.get("fields", ())) <= 10
        else:
            assert 1 <= len(block["elements"]) <= 10
            assert all(e["type"] in ("mrkdwn", "plain_text") for e in block["elements"])


def test_the_slack_payload_is_an_incoming_webhook_message_with_text_and_blocks() -> None:
    message = notifications.slack_payload(notice("https://spikeprof.example"))
    assert_slack_message(message)
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "spikeprof: capture partly failed"},
    }
    text = json.dumps(message)
    assert "cpu 93% of limit for 30s" in text
    assert "main.f4" in text and "main.f5" not in text  # the top five only
    assert "web-2/heap: Timeout: no answer within 30s" in text
    link = "https://spikeprof.example/captures?namespace=shop&amp;session=checkout"
    assert f"<{link}|Open in spikeprof>" in text
    assert message["text"] == notice().summary


def test_cluster_text_cannot_form_slack_markup() -> None:
    functions = [(HOSTILE, 5)]
    hostile = ProfileOutcome("cpu", file="cpu.pb.gz", summary=summary(*functions))
    made = notifications.capture_notice(
        "shop",
        "checkout",
        CaptureOutcome(request(), (PodOutcome(HOSTILE, None, "d", (hostile,)),)),
        artifacts_at="/v",
        ui_url=None,
    )
    message = notifications.slack_payload(made)
    assert_slack_message(message)
    text = json.dumps(message)
    assert "<script>" not in text and "<@here>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;@here&gt;" in text


def test_a_huge_capture_still_fits_slacks_limits() -> None:
    names = [(f"pkg.{'Generic' * 300}[T{i}]", 100 - i) for i in range(9)]
    profile = ProfileOutcome("cpu", file="cpu.pb.gz", summary=summary(*names))
    failure = ProfileOutcome("heap", failure=ProfileError(FailureReason.HTTP_ERROR, "x" * 5000))
    pods = tuple(PodOutcome(f"web-{i}", None, f"d/{i}", (profile, failure)) for i in range(200))
    made = notifications.capture_notice(
        "shop", "checkout", CaptureOutcome(request(), pods), artifacts_at="/v", ui_url=None
    )
    message = notifications.slack_payload(made)
    assert_slack_message(message)
    assert "and 180 more profile(s)" in json.dumps(message)
    assert len(notifications.json_payload(made)["top"]) == 200  # programs get everything


def test_the_expiry_message_fits_slacks_shape_too() -> None:
    made = notifications.expiry_notice(
        "shop", "checkout", captures=0, failed=0, artifacts_at="/v", ui_url=None
    )
    message = notifications.slack_payload(made)
    assert_slack_message(message)
    assert message["blocks"][0]["text"]["text"] == "spikeprof: session expired"


def test_the_verdict_says_delivered_or_names_each_failed_webhook() -> None:
    made = notice()
    ok = notifications.delivery_verdict(made, {}, 2)
    assert (ok.ok, ok.reason) == (True, "Delivered")
    assert ok.message == "2 webhook(s) were told of capture 20261126T010000Z-threshold."
    failed = notifications.delivery_verdict(
        made, {"Secret b key url (slack)": "HTTP 500 (after 4 tries)"}, 2
    )
    assert (failed.ok, failed.reason) == (False, "DeliveryFailed")
    assert failed.message == (
        "1 of 2 webhook(s) could not be told of capture 20261126T010000Z-threshold: "
        "Secret b key url (slack): HTTP 500 (after 4 tries)."
    )


def test_a_one_pod_capture_links_to_its_page_in_the_ui() -> None:
    one = CaptureOutcome(request(), outcome().pods[:1])
    made = notifications.capture_notice(
        "shop", "checkout", one, artifacts_at="/v", ui_url="http://ui/"
    )
    assert made.link == "http://ui/capture/shop/checkout/web-1/20261126T010000Z-threshold"


def test_ui_links_quote_what_they_carry() -> None:
    url = notifications.ui_capture_url("http://ui/", "a b", "s/x", "p", "c")
    assert url == "http://ui/capture/a%20b/s%2Fx/p/c"
    assert notifications.ui_session_url("http://ui", "a&b", "s") == (
        "http://ui/captures?namespace=a%26b&session=s"
    )
