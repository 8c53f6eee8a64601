"""adapters.events: the fence is asked when an event is sent, not when it is queued."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from spikeprof.adapters.events import EventPoster, involved_object

SESSION = {
    "apiVersion": "spikeprof.io/v1alpha1",
    "kind": "ProfilingSession",
    "metadata": {"name": "hot", "namespace": "shop", "uid": "u-1"},
}


class FakeEvents:
    """CoreV1Api's create_namespaced_event: away for the first `away` calls."""

    def __init__(self, away: int = 0) -> None:
        self.away = away
        self.created: list[tuple[str, dict[str, Any]]] = []

    async def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        if self.away:
            self.away -= 1
            raise aiohttp.ClientConnectionError("connection refused")
        self.created.append((namespace, body))


def poster(fake: FakeEvents) -> EventPoster:
    events = EventPoster(None, component="spikeprof", instance="replica-a", backoffs=(0.01,) * 5)
    events.core = fake
    return events


async def test_an_event_is_sent_with_the_replica_that_said_it() -> None:
    fake = FakeEvents()
    events = poster(fake)
    events.post(involved_object(SESSION), "Normal", "Captured", "Captured 1 pod.", lambda: True)
    await asyncio.sleep(0.05)
    await events.close()
    ((namespace, body),) = fake.created
    assert namespace == "shop"
    assert body["involvedObject"] == {
        "apiVersion": "spikeprof.io/v1alpha1",
        "kind": "ProfilingSession",
        "name": "hot",
        "namespace": "shop",
        "uid": "u-1",
    }
    assert (body["reason"], body["reportingInstance"], body["source"]) == (
        "Captured",
        "replica-a",
        {"component": "spikeprof"},
    )
    assert body["eventTime"].endswith("Z") and len(body["eventTime"]) == 27  # MicroTime


async def test_an_event_queued_while_leading_is_dropped_if_the_fence_closed_before_sending() -> (
    None
):
    fake = FakeEvents()
    events = poster(fake)
    leading = [True]
    events.post(involved_object(SESSION), "Normal", "CaptureStarted", "...", lambda: leading[0])
    leading[0] = False  # paused (SIGSTOP) before the poster ran, and woke without the Lease
    await asyncio.sleep(0.05)
    await events.close()
    assert fake.created == []


async def test_an_event_waits_for_the_api_server_while_the_fence_is_open() -> None:
    fake = FakeEvents(away=3)
    events = poster(fake)
    events.post(involved_object(SESSION), "Normal", "Captured", "...", lambda: True)
    await asyncio.sleep(0.2)
    await events.close()
    assert [body["reason"] for _, body in fake.created] == ["Captured"]
