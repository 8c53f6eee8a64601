"""AlertIntake: firing alerts recorded as pending in the sessions they match, before the answer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from spikeprof.adapters.alert_receiver import RecordingFailedError
from spikeprof.adapters.kube import KubeError, SessionGoneError
from spikeprof.core.alerts import Notification, parse_notification
from spikeprof.core.spec import parse_spec
from spikeprof.services import alerts
from spikeprof.services.alerts import (
    AlertIntake,
    SessionRegistry,
    SessionView,
    listens_for_alerts,
)
from spikeprof.telemetry import Metrics
from tests.unit.services.conftest import FakeStatusWriter, pod, spec

KEY = "abc@2026-11-26T01:00:00Z"


def notification(*alerts: Mapping[str, Any]) -> Notification:
    def alert(fingerprint: str = "abc", **labels: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {"alertname": "HighCPU", "namespace": "shop", **labels},
            "annotations": {},
            "startsAt": "2026-11-26T01:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint,
        }

    body = [alert(**a) for a in alerts] or [alert(pod="web-1")]
    return parse_notification({"version": "4", "status": "firing", "groupKey": "g", "alerts": body})


class Sessions:
    """One registered session named checkout, and what was delivered to its loop."""

    def __init__(self, status: Mapping[str, Any] | None = None, already_waiting: int = 0) -> None:
        self.registry = SessionRegistry()
        self.delivered: list[Mapping[str, Any]] = []
        self.writes: list[asyncio.Future[None]] = []
        parsed = parse_spec(spec(trigger={"alerts": {"matchLabels": {"alertname": "HighCPU"}}}))
        self.registry.register(
            SessionView(
                "shop",
                "checkout",
                parsed,
                lambda: [pod("web-1"), pod("web-2")],
                lambda: status or {},
                self.deliver,
                # As the loop counts: those waiting already and those delivered since.
                lambda: already_waiting + sum(len(entries) for entries in self.delivered),
            )
        )

    def deliver(self, entries: Mapping[str, Any], written: asyncio.Future[None]) -> None:
        self.delivered.append(entries)
        self.writes.append(written)


async def test_a_firing_alert_is_recorded_as_pending_and_handed_to_the_session() -> None:
    writer, sessions = FakeStatusWriter(), Sessions()
    result = await AlertIntake(sessions.registry, writer).receive(notification())
    assert (result.recorded, result.duplicates, result.unmatched) == (1, 0, 0)
    entry = writer.status["pendingAlerts"][KEY]
    assert (entry["alert"], entry["pods"]) == ("HighCPU", ["web-1"])
    assert sessions.delivered == [{KEY: writer.patches[0]["pendingAlerts"][KEY]}]


async def test_an_alert_already_handled_or_just_recorded_is_a_duplicate() -> None:
    writer = FakeStatusWriter()
    handled = Sessions({"alertsHandled": [KEY]})
    result = await AlertIntake(handled.registry, writer).receive(notification())
    assert (result.recorded, result.duplicates) == (0, 1)
    assert writer.patches == []

    fresh = AlertIntake(Sessions().registry, writer)
    await fresh.receive(notification())
    again = await fresh.receive(notification())  # the watch has not shown the status yet
    assert (again.recorded, again.duplicates) == (0, 1)


async def test_alerts_for_pods_or_names_no_session_selects_are_unmatched() -> None:
    writer = FakeStatusWriter()
    result = await AlertIntake(Sessions().registry, writer).receive(
        notification({"pod": "db-0", "fingerprint": "f1"}, {"alertname": "DiskFull"})
    )
    assert (result.recorded, result.unmatched) == (0, 2)
    assert writer.patches == []


async def test_a_refused_write_fails_the_notification_so_alertmanager_retries() -> None:
    writer = FakeStatusWriter(fail_with=KubeError("etcd is read-only"))
    with pytest.raises(RecordingFailedError, match="etcd is read-only"):
        await AlertIntake(Sessions().registry, writer).receive(notification())


async def test_a_session_deleted_since_it_matched_is_owed_nothing() -> None:
    writer, sessions = FakeStatusWriter(fail_with=SessionGoneError("gone")), Sessions()
    result = await AlertIntake(sessions.registry, writer).receive(notification())
    assert result.recorded == 0  # nowhere to record it
    # Handed over while the write was under way; the write's failure tells the loop to drop it.
    assert isinstance(sessions.writes[0].exception(), SessionGoneError)


class GatedWriter(FakeStatusWriter):
    """Holds each write until the test opens the gate, as a slow API server would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self.gate.wait()
        await super().patch(namespace, name, status)


async def test_alerts_arriving_during_a_write_share_the_next_one() -> None:
    writer, sessions = GatedWriter(), Sessions()
    intake = AlertIntake(sessions.registry, writer)
    first = asyncio.create_task(intake.receive(notification({"pod": "web-1", "fingerprint": "a"})))
    await asyncio.sleep(0)
    later = [
        asyncio.create_task(intake.receive(notification({"pod": "web-2", "fingerprint": f})))
        for f in ("b", "c", "d")
    ]
    await asyncio.sleep(0)
    writer.gate.set()
    results = await asyncio.gather(first, *later)
    assert sum(r.recorded for r in results) == 4
    assert len(writer.patches) == 2
    assert len(writer.status["pendingAlerts"]) == 4


class TimedWriter(FakeStatusWriter):
    """Notes the loop time each write starts at."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[float] = []

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.started.append(asyncio.get_running_loop().time())
        await super().patch(namespace, name, status)


async def test_a_sessions_writes_start_at_least_the_spacing_apart_and_alerts_gather_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "WRITE_SPACING_SECONDS", 0.2)
    writer, sessions = TimedWriter(), Sessions()
    intake = AlertIntake(sessions.registry, writer)
    await intake.receive(notification({"pod": "web-1", "fingerprint": "a"}))  # written at once
    later = [
        asyncio.create_task(intake.receive(notification({"pod": "web-2", "fingerprint": f})))
        for f in ("b", "c", "d")
    ]
    results = await asyncio.gather(*later)
    assert sum(r.recorded for r in results) == 3
    assert len(writer.started) == 2  # the three that came within the spacing share one write
    assert writer.started[1] - writer.started[0] >= 0.2
    assert len(writer.status["pendingAlerts"]) == 4


async def test_a_write_cancelled_while_it_waits_fails_its_requests_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "WRITE_SPACING_SECONDS", 60.0)
    writer, sessions = TimedWriter(), Sessions()
    intake = AlertIntake(sessions.registry, writer)
    await intake.receive(notification({"pod": "web-1", "fingerprint": "a"}))
    waiting = asyncio.create_task(
        intake.receive(notification({"pod": "web-2", "fingerprint": "b"}))
    )
    await asyncio.sleep(0.01)
    # As the operator stops: the write's task is cancelled while it waits for its turn.
    (flush,) = asyncio.all_tasks() - {asyncio.current_task(), waiting}
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)
    monkeypatch.setattr(alerts, "WRITE_SPACING_SECONDS", 0.0)
    later = await asyncio.wait_for(intake.receive(notification({"fingerprint": "c"})), 1)
    assert later.recorded == 1  # a new write, not one joined to the cancelled batch
    assert len(writer.started) == 2


async def test_past_the_limit_of_pending_alerts_the_rest_are_refused_and_the_others_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "PENDING_ALERTS_LIMIT", 3)
    writer, sessions = FakeStatusWriter(), Sessions(already_waiting=1)
    metrics = Metrics.create()
    intake = AlertIntake(sessions.registry, writer, metrics=metrics)
    firing = [{"pod": "web-1", "fingerprint": f} for f in ("a", "b", "c", "d")]
    with pytest.raises(
        RecordingFailedError,
        match=r"ProfilingSession shop/checkout already holds 3 alerts waiting for a capture, "
        r"its limit, so 2 more were not recorded",
    ):
        await intake.receive(notification(*firing, {"pod": "db-0", "fingerprint": "x"}))
    # Two fit beside the one waiting: recorded and handed over, and a re-send finds them.
    assert sorted(writer.status["pendingAlerts"]) == [
        "a@2026-11-26T01:00:00Z",
        "b@2026-11-26T01:00:00Z",
    ]
    assert len(sessions.delivered) == 1
    with pytest.raises(RecordingFailedError, match="so 2 more"):
        await intake.receive(notification(*firing))

    def received(result: str) -> float | None:
        return metrics.registry.get_sample_value(
            "spikeprof_alerts_received_total", {"result": result}
        )

    assert (received("recorded"), received("refused"), received("unmatched")) == (2, 4, 1)
    assert received("duplicate") == 2


async def test_for_a_session_served_elsewhere_its_status_and_the_writes_under_way_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "PENDING_ALERTS_LIMIT", 4)
    monkeypatch.setattr(alerts, "WRITE_SPACING_SECONDS", 0.0)
    registry = SessionRegistry()
    stored = {"pendingAlerts": {"old": {"alert": "HighCPU"}, "answered": None}}
    registry.stand_by(
        "shop", "checkout", spec(trigger={"alerts": {"matchLabels": {"alertname": "HighCPU"}}}),
        stored,
    )  # fmt: skip
    writer = GatedWriter()
    intake = AlertIntake(registry, writer)

    def receive(*fingerprints: str) -> asyncio.Task[Any]:
        firing = [{"fingerprint": f} for f in fingerprints]  # no pod: every selected one
        return asyncio.create_task(intake.receive(notification(*firing)))

    writing = receive("a", "b")  # its write is under way, held at the gate
    await asyncio.sleep(0.01)
    gathering = receive("c")  # gathers for the next write
    await asyncio.sleep(0.01)
    with pytest.raises(RecordingFailedError, match=r"already holds 4 alerts .* so 1 more"):
        await receive("d")
    writer.gate.set()
    await asyncio.gather(writing, gathering)
    assert intake._unsettled == {}  # written: from now on the status counts them


async def test_a_failed_write_is_counted_by_alert() -> None:
    metrics = Metrics.create()
    writer = FakeStatusWriter(fail_with=KubeError("etcd is read-only"))
    intake = AlertIntake(Sessions().registry, writer, metrics=metrics)
    with pytest.raises(RecordingFailedError):
        await intake.receive(notification({"fingerprint": "a"}, {"fingerprint": "b"}))
    assert (
        metrics.registry.get_sample_value("spikeprof_alerts_received_total", {"result": "failed"})
        == 2
    )


async def test_a_sessions_last_write_time_is_kept_only_while_it_spaces_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "WRITE_SPACING_SECONDS", 0.05)
    intake = AlertIntake(Sessions().registry, FakeStatusWriter())
    await intake.receive(notification({"fingerprint": "a"}))
    assert list(intake._last_write) == [("shop", "checkout")]
    await asyncio.sleep(0.06)
    await intake.receive(notification({"pod": "db-0"}))  # matches nothing: no write
    assert intake._last_write == {}


def test_a_session_that_takes_alerts_holds_readiness_until_it_is_served() -> None:
    registry = Sessions().registry  # shop/checkout is registered
    registry.expect("shop", "checkout", lambda: True)
    registry.expect("shop", "hot", lambda: True)
    registry.expect("shop", "no-alerts", lambda: False)
    registry.expect("other", "elsewhere", lambda: True)
    assert registry.unregistered(lambda namespace: namespace == "shop") == ["shop/hot"]
    hot = registry.get("shop", "checkout")
    assert hot is not None
    registry.register(dataclasses.replace(hot, name="hot"))
    assert registry.unregistered(lambda namespace: namespace == "shop") == []
    registry.unregister("shop", "hot")  # its worker stopped: leadership went away
    registry.forget("shop", "hot")  # and the session was deleted
    assert registry.unregistered(lambda namespace: True) == ["other/elsewhere"]


def test_only_a_valid_spec_with_an_alert_trigger_listens_for_alerts() -> None:
    assert listens_for_alerts(spec(trigger={"alerts": {"matchLabels": {"alertname": "Hot"}}}))
    assert not listens_for_alerts(spec(trigger={"immediate": True}))
    assert not listens_for_alerts(spec(profiles=[{"type": "nonsense"}]))


async def test_the_session_gets_the_alert_before_its_write_lands_and_the_answer_after() -> None:
    writer, sessions = GatedWriter(), Sessions()
    receiving = asyncio.create_task(AlertIntake(sessions.registry, writer).receive(notification()))
    for _ in range(5):
        await asyncio.sleep(0)
    # The session's loop may start the capture now ...
    assert list(sessions.delivered[0]) == [KEY]
    assert not sessions.writes[0].done()
    # ... while the receiver's answer still waits for the alert to be in status.
    assert not receiving.done()
    writer.gate.set()
    assert (await receiving).recorded == 1
    assert sessions.writes[0].done() and sessions.writes[0].exception() is None
    assert KEY in writer.status["pendingAlerts"]
