"""A session's selected pods follow the pod cache: on each new pods version only the records that
changed are matched again, and the status counts what is selected now."""

from __future__ import annotations

import dataclasses
import datetime

from spikeprof.core.pods import PodInfo
from spikeprof.services.alerts import SessionRegistry
from spikeprof.services.session import SessionWorker
from spikeprof.services.triggers import SpikeWatcher
from tests.unit.services.conftest import (
    NOW,
    FakeArmer,
    FakeCapturer,
    FakeMetricSource,
    FakeOutputs,
    FakeStatusWriter,
    NotifierParts,
    pod,
    spec,
)

META = {"generation": 1, "creationTimestamp": "2026-11-26T00:59:00Z"}


class Cache:
    """The pod cache as the worker sees it: records by name, replaced when a pod changes."""

    def __init__(self, *pods: PodInfo) -> None:
        self.pods = {p.name: p for p in pods}
        self.version = 1

    def put(self, record: PodInfo) -> None:
        self.pods[record.name] = record
        self.version += 1

    def delete(self, name: str) -> None:
        del self.pods[name]
        self.version += 1


async def _no_verbs_missing(namespace: str) -> list[str]:
    return []


def worker(writer: FakeStatusWriter, cache: Cache) -> SessionWorker:
    return SessionWorker(
        namespace="shop",
        name="checkout",
        writer=writer,
        capturer=FakeCapturer(),
        version="test",
        pods_in_namespace=lambda: list(cache.pods.values()),
        pods_version=lambda: cache.version,
        post_event=lambda *event: None,
        spikes=SpikeWatcher(lambda trigger, target: FakeMetricSource()),
        registry=SessionRegistry(),
        outputs=FakeOutputs(),
        armer=FakeArmer(),
        port_forward_missing=_no_verbs_missing,
        notifier=NotifierParts().notifier(),
    )


async def test_selection_follows_relabelled_added_deleted_and_unready_pods(
    writer: FakeStatusWriter,
) -> None:
    web = {"app": "web"}
    cache = Cache(pod("web-1", labels=web), pod("web-2", labels=web), pod("db-1", labels={}))
    session = worker(writer, cache)
    moment = iter(NOW + datetime.timedelta(seconds=s) for s in range(100))

    async def targets() -> dict[str, object]:
        await session.step(spec(), META, dict(writer.status), next(moment))
        found: dict[str, object] = writer.status["targets"]
        return found

    assert (await targets())["summary"] == "2/2"
    cache.put(dataclasses.replace(cache.pods["web-2"], labels={"app": "db"}))  # relabelled
    assert (await targets())["summary"] == "1/1"
    cache.put(pod("web-3", labels=web))  # added
    cache.put(dataclasses.replace(cache.pods["db-1"], labels=web))  # now selected
    assert (await targets())["summary"] == "3/3"
    cache.put(dataclasses.replace(cache.pods["web-1"], ready=False))  # still selected
    assert (await targets())["summary"] == "2/3"
    cache.delete("web-3")
    assert (await targets())["summary"] == "1/2"
