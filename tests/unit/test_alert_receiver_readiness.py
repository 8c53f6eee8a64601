"""The receiver's /readyz, and a replica that is not ready (a standby) recording no alert."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from spikeprof.adapters.alert_receiver import build_app
from spikeprof.core.alerts import Notification

PAYLOAD = {
    "version": "4",
    "groupKey": "{}:{}",
    "status": "firing",
    "receiver": "spikeprof",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Hot", "namespace": "shop", "pod": "web-1"},
            "startsAt": "2026-12-02T02:00:00Z",
            "fingerprint": "f1",
        }
    ],
}


async def serve(why_not: list[str | None]) -> tuple[TestClient[Any, Any], list[Notification]]:
    received: list[Notification] = []

    async def receive(notification: Notification) -> str:
        received.append(notification)
        return "recorded"

    client = TestClient(TestServer(build_app(receive, None, lambda: why_not[0])))
    await client.start_server()
    return client, received


async def test_a_standby_is_not_ready_and_answers_alerts_503_without_recording_them() -> None:
    client, received = await serve(["this replica is not the leader (a standby)"])
    try:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "not the leader" in await ready.text()
        posted = await client.post("/alerts", json=PAYLOAD)
        assert posted.status == 503
        assert "retry later" in (await posted.json())["error"]
        assert received == []
        assert (await client.get("/healthz")).status == 200  # alive all the same
    finally:
        await client.close()


async def test_the_leader_is_ready_and_records_alerts() -> None:
    why_not: list[str | None] = ["standby"]
    client, received = await serve(why_not)
    try:
        why_not[0] = None  # it became the leader
        assert (await client.get("/readyz")).status == 200
        assert (await client.post("/alerts", json=PAYLOAD)).status == 200
        assert len(received) == 1
    finally:
        await client.close()
