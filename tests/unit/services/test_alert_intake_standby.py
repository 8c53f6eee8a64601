"""Alerts for sessions this replica knows but does not serve (another shard does): recorded in
their status all the same, with a named pod read from the API server, before the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spikeprof.adapters.alert_receiver import RecordingFailedError
from spikeprof.adapters.kube import ApiUnavailableError
from spikeprof.core.alerts import Notification, parse_notification
from spikeprof.core.pods import PodInfo
from spikeprof.core.spec import parse_spec
from spikeprof.services.alerts import (
    POD_READS_AT_ONCE,
    AlertIntake,
    SessionRegistry,
    SessionView,
)
from tests.unit.services.conftest import FakeStatusWriter, pod, spec

KEY = "abc@2026-11-26T01:00:00Z"
ALERTS = {"alerts": {"matchLabels": {"alertname": "HighCPU"}}}


def notification(**labels: str) -> Notification:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighCPU", "namespace": "shop", **labels},
        "annotations": {},
        "startsAt": "2026-11-26T01:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "abc",
    }
    return parse_notification(
        {"version": "4", "status": "firing", "groupKey": "g", "alerts": [alert]}
    )


class Pods:
    """The API server's pods of namespace shop, and which were read."""

    def __init__(self, *pods: PodInfo, away: bool = False) -> None:
        self.pods = {p.name: p for p in pods}
        self.read: list[tuple[str, str]] = []
        self.away = away

    async def find(self, namespace: str, name: str) -> PodInfo | None:
        self.read.append((namespace, name))
        if self.away:
            raise ApiUnavailableError("the API server does not answer")
        return self.pods.get(name)


def standing_by(status: dict[str, Any] | None = None, **changes: Any) -> SessionRegistry:
    registry = SessionRegistry()
    registry.stand_by("shop", "checkout", spec(trigger=ALERTS, **changes), status or {})
    return registry


async def test_an_alert_naming_a_selected_pod_of_a_session_served_elsewhere_is_recorded() -> None:
    writer, pods = FakeStatusWriter(), Pods(pod("web-1"))
    intake = AlertIntake(standing_by(), writer, pods.find)
    result = await intake.receive(notification(pod="web-1"))
    assert (result.recorded, result.unmatched) == (1, 0)
    assert writer.status["pendingAlerts"][KEY]["pods"] == ["web-1"]
    assert pods.read == [("shop", "web-1")]  # one read, not a watch of the namespace


async def test_an_alert_naming_no_pod_is_recorded_for_every_selected_pod_without_a_read() -> None:
    writer, pods = FakeStatusWriter(), Pods()
    result = await AlertIntake(standing_by(), writer, pods.find).receive(notification())
    assert result.recorded == 1
    assert "pods" not in writer.status["pendingAlerts"][KEY]  # every selected pod
    assert pods.read == []


@pytest.mark.parametrize(
    "pods",
    [Pods(), Pods(pod("web-1", labels={"app": "other"}))],
    ids=["no such pod", "a pod the session does not select"],
)
async def test_an_alert_naming_a_pod_the_session_would_not_capture_is_unmatched(
    pods: Pods,
) -> None:
    writer = FakeStatusWriter()
    result = await AlertIntake(standing_by(), writer, pods.find).receive(notification(pod="web-1"))
    assert (result.recorded, result.unmatched) == (0, 1)
    assert writer.patches == []


async def test_an_alert_already_pending_in_the_status_kopf_shows_is_a_duplicate() -> None:
    writer = FakeStatusWriter()
    registry = standing_by({"pendingAlerts": {KEY: {"alert": "HighCPU"}}})
    result = await AlertIntake(registry, writer, Pods().find).receive(notification())
    assert (result.recorded, result.duplicates) == (0, 1)


async def test_sessions_with_an_invalid_spec_or_no_alert_trigger_match_nothing() -> None:
    writer = FakeStatusWriter()
    registry = SessionRegistry()
    registry.stand_by("shop", "invalid", spec(trigger=ALERTS, profiles=[]), {})
    registry.stand_by("shop", "no-alerts", spec(), {})
    result = await AlertIntake(registry, writer, Pods().find).receive(notification())
    assert (result.recorded, result.unmatched) == (0, 1)


async def test_when_the_pod_cannot_be_read_the_receiver_answers_an_error_to_be_retried() -> None:
    intake = AlertIntake(standing_by(), FakeStatusWriter(), Pods(away=True).find)
    with pytest.raises(RecordingFailedError):
        await intake.receive(notification(pod="web-1"))


async def test_a_session_served_here_is_matched_once_through_its_worker_not_its_standby() -> None:
    writer, pods = FakeStatusWriter(), Pods(pod("web-1"))
    registry = standing_by()
    delivered: list[Any] = []
    registry.register(
        SessionView(
            "shop",
            "checkout",
            parse_spec(spec(trigger=ALERTS)),
            lambda: [pod("web-1")],
            dict,
            lambda entries, written: delivered.append(entries),
            lambda: len(delivered),
        )
    )
    result = await AlertIntake(registry, writer, pods.find).receive(notification(pod="web-1"))
    assert result.recorded == 1 and len(writer.patches) == 1
    assert pods.read == []  # the worker's cache answered
    assert len(delivered) == 1
    # Let go (another shard serves it now): the standby view answers again.
    registry.unregister("shop", "checkout")
    assert [v.name for v in registry.standing_by()] == ["checkout"]
    registry.forget("shop", "checkout")
    assert registry.standing_by() == []


async def test_a_burst_reads_each_named_pod_once_and_a_few_at_a_time() -> None:
    registry = SessionRegistry()
    namespaces = [f"team-{i}" for i in range(40)]
    for ns in namespaces:
        registry.stand_by(ns, "checkout", spec(trigger=ALERTS), {})
    reading = peak = 0
    reads: list[tuple[str, str]] = []

    async def find(namespace: str, name: str) -> PodInfo | None:
        nonlocal reading, peak
        reads.append((namespace, name))
        reading += 1
        peak = max(peak, reading)
        await asyncio.sleep(0.01)
        reading -= 1
        return pod(name, namespace=namespace)

    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "HighCPU", "namespace": ns, "pod": "web-1"},
            "startsAt": "2026-11-26T01:00:00Z",
            "fingerprint": f"fp-{ns}-{copy}",
        }
        for ns in namespaces
        for copy in range(2)  # two alerts name each pod
    ]
    burst = parse_notification(
        {"version": "4", "status": "firing", "groupKey": "g", "alerts": alerts}
    )
    writer = FakeStatusWriter()
    result = await AlertIntake(registry, writer, find).receive(burst)
    assert (result.recorded, result.unmatched) == (80, 0)
    assert sorted(reads) == [(ns, "web-1") for ns in sorted(namespaces)]
    assert 1 < peak <= POD_READS_AT_ONCE
