"""A session's status writes wait, in order, while the API server is away."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from spikeprof.adapters.kube import ApiUnavailableError
from spikeprof.services.status_outbox import SEEN_SECONDS, StatusOutbox


class Writer:
    """Records what reached the API server; refuses everything while `away`."""

    def __init__(self) -> None:
        self.away = False
        self.written: list[dict[str, Any]] = []

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        if self.away:
            raise ApiUnavailableError("the API server is unreachable")
        self.written.append(dict(status))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def outbox(writer: Writer, clock: Clock | None = None) -> StatusOutbox:
    return StatusOutbox(writer, "shop", "spikes", clock or Clock())  # type: ignore[arg-type]


async def write(box: StatusOutbox, patch: Mapping[str, Any]) -> bool:
    """As the session's loop writes: queue, then flush (False while the API is away)."""
    box.queue(patch)
    return await box.flush()


async def test_writes_in_an_outage_wait_and_are_written_in_order_once_the_api_answers() -> None:
    writer = Writer()
    box = outbox(writer)
    writer.away = True
    assert not await write(box, {"phase": "Capturing", "pendingCapture": {"id": "c1"}})
    assert not await write(
        box, {"phase": "Armed", "pendingCapture": None, "captures": {"total": 1}}
    )
    assert not await write(box, {"pendingCapture": {"id": "c2"}})
    assert writer.written == []
    assert box.waiting == 2  # the first two squash; the third cannot join them

    writer.away = False
    assert await box.flush()
    assert writer.written == [
        {"phase": "Armed", "pendingCapture": None, "captures": {"total": 1}},
        {"pendingCapture": {"id": "c2"}},
    ]
    assert box.waiting == 0
    assert await box.flush()
    assert len(writer.written) == 2  # nothing is written twice


async def test_the_loop_sees_the_status_as_it_will_be_while_the_api_is_away() -> None:
    writer = Writer()
    box = outbox(writer)
    stored = {"phase": "Armed", "captures": {"total": 1, "failed": 0}}
    writer.away = True
    await write(box, {"captures": {"total": 2}, "lastCapture": {"id": "c2"}})
    assert box.view(stored) == {
        "phase": "Armed",
        "captures": {"total": 2, "failed": 0},
        "lastCapture": {"id": "c2"},
    }


async def test_a_written_patch_counts_until_kopf_sees_it() -> None:
    writer, clock = Writer(), Clock()
    box = outbox(writer, clock)
    stored: dict[str, Any] = {"captures": {"total": 1}}
    await write(box, {"captures": {"total": 2}})
    assert box.view(stored) == {"captures": {"total": 2}}  # kopf's watch has not followed yet
    stored = {"captures": {"total": 2}}
    assert box.view(stored) == stored
    # Seen once: an older copy from kopf no longer brings the patch back.
    assert box.view({"captures": {"total": 1}}) == {"captures": {"total": 1}}


async def test_a_written_patch_kopf_never_shows_stops_counting_after_a_while() -> None:
    writer, clock = Writer(), Clock()
    box = outbox(writer, clock)
    await write(box, {"note": "stored in another form"})
    assert box.view({}) == {"note": "stored in another form"}
    clock.now += SEEN_SECONDS + 1
    assert box.view({}) == {}


class SlowWriter(Writer):
    """Holds each write until `go` is set, as a busy API server would."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self.go.wait()
        await super().patch(namespace, name, status)


async def test_overlapping_writes_are_written_once_each_in_order_and_none_is_lost() -> None:
    writer = SlowWriter()
    box = outbox(writer)
    first = asyncio.create_task(write(box, {"phase": "Armed", "captures": {"total": 1}}))
    await asyncio.sleep(0)  # the first patch is on the wire
    second = asyncio.create_task(write(box, {"captures": {"total": 2}}))
    third = asyncio.create_task(write(box, {"pendingCapture": {"id": "c3"}}))
    await asyncio.sleep(0)
    # Seen by the loop before it is written; what was on the wire was not squashed into.
    assert box.view({}) == {
        "phase": "Armed",
        "captures": {"total": 2},
        "pendingCapture": {"id": "c3"},
    }
    assert box.waiting == 2
    writer.go.set()
    assert await asyncio.gather(first, second, third) == [True, True, True]
    assert writer.written == [
        {"phase": "Armed", "captures": {"total": 1}},
        {"captures": {"total": 2}, "pendingCapture": {"id": "c3"}},
    ]
    assert box.waiting == 0


async def test_a_patch_waits_for_the_writes_it_must_follow_and_later_ones_squash_into_it() -> None:
    writer = Writer()
    box = outbox(writer)
    receiver: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    box.queue({"pendingCapture": {"id": "c1", "pods": ["a"]}}, [receiver])
    box.queue({"pendingCapture": {"pods": ["a", "b"]}}, [receiver])  # a join, same wait
    flushing = asyncio.create_task(box.flush())
    await asyncio.sleep(0)
    assert writer.written == []  # the receiver's write has not landed
    assert box.view({})["pendingCapture"] == {"id": "c1", "pods": ["a", "b"]}
    receiver.set_result(None)
    assert await flushing is True
    assert writer.written == [{"pendingCapture": {"id": "c1", "pods": ["a", "b"]}}]


async def test_a_patch_that_requires_work_is_sent_once_it_succeeded_and_never_if_it_failed() -> (
    None
):
    writer = Writer()
    box = outbox(writer)
    commits: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    box.queue({"pendingCapture": None, "captures": {"total": 1}}, required=[commits])
    box.queue({"pendingCapture": {"id": "c2"}})  # the next capture, behind the end
    flushing = asyncio.create_task(box.flush())
    await asyncio.sleep(0)
    assert writer.written == []
    commits.set_result(None)
    assert await flushing is True
    assert writer.written == [
        {"pendingCapture": None, "captures": {"total": 1}},
        {"pendingCapture": {"id": "c2"}},
    ]

    failed = outbox(Writer())
    refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    refused.set_exception(OSError("No space left on device"))
    failed.queue({"pendingCapture": None}, required=[refused])
    failed.queue({"pendingCapture": {"id": "c3"}})
    for _ in range(2):  # dropped, and said again to every later writer
        with pytest.raises(OSError, match="No space left"):
            await failed.flush()
    assert failed.view({"pendingCapture": {"id": "c1"}}) == {"pendingCapture": {"id": "c1"}}
