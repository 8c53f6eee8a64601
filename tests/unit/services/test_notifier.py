"""Notifier: webhooks are told in the background, retried with growing pauses, and what came of
it is counted and written as the NotificationsDelivered condition at the session's next look."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from spikeprof.adapters.webhook import WebhookError
from spikeprof.services.notify import Deliveries
from tests.unit.services.conftest import NOW, FakeStatusWriter, NotifierParts, spec
from tests.unit.services.test_session_worker import Session

HOOK = {"secretRef": {"name": "hooks", "key": "team"}}
URL = "http://127.0.0.1:9/hook"


def parts(**changes: Any) -> NotifierParts:
    made = NotifierParts(**changes)
    made.secrets.data[("shop", "hooks")] = {"team": URL + "\n", "other": "x"}
    return made


def notify_spec(*hooks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return spec(trigger={"immediate": True}, notify=list(hooks or [HOOK]), **changes)


async def settled(made: NotifierParts) -> None:
    """Until every delivery started has finished (the fakes never sleep for real)."""
    for _ in range(100):
        if not made.deliveries.pending:
            return
        await asyncio.sleep(0)
    raise AssertionError("a delivery is still under way")


def condition(writer: FakeStatusWriter) -> dict[str, Any] | None:
    conditions = writer.status.get("conditions") or []
    return next((c for c in conditions if c["type"] == "NotificationsDelivered"), None)


async def test_a_webhook_that_fails_twice_is_told_on_the_third_try_after_one_and_two_seconds(
    writer: FakeStatusWriter,
) -> None:
    made = parts()
    made.poster.answers = [
        WebhookError("HTTP 503 Service Unavailable", retry=True),
        WebhookError("no answer within 10s", retry=True),
        None,
    ]
    session = Session(writer, notifier=made.notifier())
    assert await session.look(notify_spec()) is True
    await settled(made)

    assert made.pauses == [1.0, 2.0]
    assert [url for url, _ in made.poster.posts] == [URL] * 3  # the Secret's value, stripped
    payload = made.poster.posts[-1][1]
    assert payload["event"] == "CaptureSucceeded"
    assert payload["session"] == {"namespace": "shop", "name": "checkout"}
    assert payload["pods"] == ["web-1"]
    assert (
        made.counted("spikeprof_notification_attempts_total", format="json", result="failed") == 2
    )
    assert made.counted("spikeprof_notification_attempts_total", format="json", result="ok") == 1
    assert made.counted("spikeprof_notifications_total", format="json", result="delivered") == 1

    await session.look(notify_spec())
    delivered = condition(writer)
    assert delivered is not None
    assert (delivered["status"], delivered["reason"]) == ("True", "Delivered")
    capture_id = writer.status["lastCapture"]["id"]
    assert delivered["message"] == f"1 webhook(s) were told of capture {capture_id}."


async def test_a_webhook_that_never_answers_does_not_hold_back_the_capture_or_the_next_look(
    writer: FakeStatusWriter,
) -> None:
    made = parts()
    made.poster.hang = True
    session = Session(writer, notifier=made.notifier())
    # The capture is recorded while its notification is still under way.
    assert await asyncio.wait_for(session.look(notify_spec()), 5) is True
    assert writer.status["captures"]["total"] == 1
    assert made.deliveries.pending == 1
    await asyncio.wait_for(session.look(notify_spec()), 5)
    assert condition(writer) is None  # nothing to say until a delivery ends
    await made.deliveries.close(grace=0.01)
    assert made.deliveries.pending == 0


async def test_every_try_failing_is_said_in_the_condition_counted_and_bounded(
    writer: FakeStatusWriter,
) -> None:
    made = parts(attempts=3)
    made.poster.answers = [WebhookError("HTTP 500 Internal Server Error", retry=True)] * 3
    session = Session(writer, notifier=made.notifier())
    await session.look(notify_spec({**HOOK, "format": "slack"}))
    await settled(made)
    await session.look(notify_spec({**HOOK, "format": "slack"}))

    assert len(made.poster.posts) == 3 and made.pauses == [1.0, 2.0]
    failed = condition(writer)
    assert failed is not None
    assert (failed["status"], failed["reason"]) == ("False", "DeliveryFailed")
    assert failed["message"] == (
        f"1 of 1 webhook(s) could not be told of capture {writer.status['lastCapture']['id']}: "
        "Secret hooks key team (slack): HTTP 500 Internal Server Error (after 3 tries)."
    )
    assert URL not in failed["message"]  # the URL is a credential
    assert made.counted("spikeprof_notifications_total", format="slack", result="failed") == 1


async def test_a_refusal_that_no_retry_can_change_is_tried_once() -> None:
    made = parts()
    made.poster.answers = [WebhookError("HTTP 404 Not Found", retry=False)]
    writer = FakeStatusWriter()
    session = Session(writer, notifier=made.notifier())
    await session.look(notify_spec())
    await settled(made)
    assert len(made.poster.posts) == 1 and made.pauses == []
    assert session.worker.notifier.verdict is not None
    assert "HTTP 404 Not Found (after 1 try)" in session.worker.notifier.verdict.message


async def test_a_receivers_retry_after_is_waited_when_longer_than_the_pause() -> None:
    made = parts()
    made.poster.answers = [WebhookError("HTTP 429 Too Many Requests", retry=True, retry_after=7)]
    session = Session(FakeStatusWriter(), notifier=made.notifier())
    await session.look(notify_spec())
    await settled(made)
    assert made.pauses == [7.0]
    assert len(made.poster.posts) == 2


async def test_a_missing_secret_or_key_is_named_and_nothing_is_posted() -> None:
    made = parts()
    gone = {"secretRef": {"name": "gone", "key": "url"}}
    no_key = {"secretRef": {"name": "hooks", "key": "missing"}}
    session = Session(FakeStatusWriter(), notifier=made.notifier())
    await session.look(notify_spec(gone, no_key))
    await settled(made)
    assert made.poster.posts == []
    verdict = session.worker.notifier.verdict
    assert verdict is not None and not verdict.ok
    assert "Secret gone key url (json): Secret shop/gone does not exist" in verdict.message
    assert "Secret hooks key missing (json): Secret shop/hooks has no key missing" in (
        verdict.message
    )


async def test_a_session_without_webhooks_posts_nothing_and_drops_the_condition(
    writer: FakeStatusWriter,
) -> None:
    made = parts()
    session = Session(writer, notifier=made.notifier())
    await session.look(notify_spec())
    await settled(made)
    await session.look(notify_spec())
    assert condition(writer) is not None
    await session.look(spec(trigger={"immediate": True}))  # notify removed from the spec
    assert condition(writer) is None
    assert len(made.poster.posts) == 1


async def test_the_session_expiring_is_told_once(writer: FakeStatusWriter) -> None:
    made = parts()
    session = Session(writer, notifier=made.notifier(ui_url="https://spikeprof.example"))
    expiring = spec(notify=[HOOK], limits={"expiresAfter": "5m"})
    await session.look(expiring)
    assert made.poster.posts == []
    later = NOW + datetime.timedelta(minutes=10)
    await session.look(expiring, later)
    await session.look(expiring, later)
    await settled(made)
    assert writer.status["phase"] == "Expired"
    assert [p["event"] for _, p in made.poster.posts] == ["SessionExpired"]
    payload = made.poster.posts[0][1]
    assert payload["link"] == "https://spikeprof.example/captures?namespace=shop&session=checkout"
    assert payload["artifacts"] == ["/var/lib/spikeprof/shop/checkout"]


async def test_a_delivery_that_breaks_unexpectedly_is_logged_and_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deliveries = Deliveries()

    async def broken() -> None:
        raise KeyError("a bug")

    deliveries.start(broken())
    for _ in range(10):
        await asyncio.sleep(0)
    assert deliveries.pending == 0
    assert "A notification failed unexpectedly." in caplog.text
    assert "KeyError: 'a bug'" in caplog.text
