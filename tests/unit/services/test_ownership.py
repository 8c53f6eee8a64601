from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from spikeprof.core.arming import WorkloadRef
from spikeprof.services.ownership import (
    EveryNamespace,
    FencedStatusWriter,
    FencedWorkloads,
    NotOwnerError,
    ServingCount,
    StopFlag,
    serve_while_owned,
)
from tests.unit.services.conftest import FakeWorkloads


class Switch:
    """An Ownership whose answer the test sets."""

    def __init__(self) -> None:
        self.owned: set[str] = set()
        self.served = ServingCount()

    def owns(self, namespace: str) -> bool:
        return namespace in self.owned

    async def changed(self, at_most: float) -> None:
        await asyncio.sleep(0.01)

    def serving(self, namespace: str) -> contextlib.AbstractContextManager[None]:
        return self.served.hold(namespace)

    def ready(self) -> bool:
        return bool(self.owned)


class Recorder:
    def __init__(self) -> None:
        self.patches: list[Mapping[str, Any]] = []

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.patches.append(status)


async def test_a_fenced_writer_refuses_once_the_namespace_is_not_ours() -> None:
    switch, recorder = Switch(), Recorder()
    writer = FencedStatusWriter(recorder, switch)
    switch.owned.add("a")
    await writer.patch("a", "s", {"phase": "Active"})
    switch.owned.clear()
    with pytest.raises(NotOwnerError, match="no longer serves namespace a"):
        await writer.patch("a", "s", {"phase": "Expired"})
    assert recorder.patches == [{"phase": "Active"}]


@contextlib.contextmanager
def stop_after(seconds: float) -> Iterator[list[bool]]:
    flag = [False]
    handle = asyncio.get_running_loop().call_later(seconds, flag.__setitem__, 0, True)
    try:
        yield flag
    finally:
        handle.cancel()


class Flag:
    def __init__(self, box: list[bool]) -> None:
        self.box = box

    def __bool__(self) -> bool:
        return self.box[0]


async def test_serving_starts_when_owned_and_stops_when_ownership_goes() -> None:
    switch = Switch()
    runs: list[str] = []

    async def serve(stop: StopFlag) -> None:
        runs.append("start")
        assert switch.served.namespaces() == {"a"}  # published while served
        while not stop:  # noqa: ASYNC110  (as the session's loop does: a look, then a wait)
            await asyncio.sleep(0.01)
        runs.append("stop")

    with stop_after(0.5) as box:
        task = asyncio.create_task(serve_while_owned(switch, "a", Flag(box), serve))
        await asyncio.sleep(0.1)
        assert runs == []  # not ours: nothing served
        switch.owned.add("a")
        await asyncio.sleep(0.1)
        switch.owned.clear()
        await asyncio.sleep(0.1)
        assert runs == ["start", "stop"]
        assert switch.served.namespaces() == frozenset()
        switch.owned.add("a")
        await task
    assert runs == ["start", "stop", "start", "stop"]


async def test_one_replica_owns_everything() -> None:
    every = EveryNamespace()
    assert every.owns("any") and every.ready()
    with every.serving("a"), every.serving("a"):
        assert every.served.namespaces() == {"a"}
    assert every.served.namespaces() == frozenset()


async def test_a_session_failing_after_its_namespace_was_lost_stands_by_instead_of_failing() -> (
    None
):
    switch = Switch()
    switch.owned.add("shop")
    stopped = asyncio.Event()
    runs: list[str] = []

    async def serve(stop: StopFlag) -> None:
        runs.append("served")
        switch.owned.clear()  # lost while it ran (a pause past the lease)
        raise FileNotFoundError("its staging directory was taken over")

    class Stopped:
        def __bool__(self) -> bool:
            return stopped.is_set()

    task = asyncio.create_task(serve_while_owned(switch, "shop", Stopped(), serve))
    await asyncio.sleep(0.05)
    assert not task.done()  # waiting to own the namespace again, not failed
    stopped.set()
    await asyncio.wait_for(task, 1.0)
    assert runs == ["served"]


async def test_a_session_failing_while_owned_fails_as_before() -> None:
    switch = Switch()
    switch.owned.add("shop")

    async def serve(stop: StopFlag) -> None:
        raise FileNotFoundError("a real failure")

    class Never:
        def __bool__(self) -> bool:
            return False

    with pytest.raises(FileNotFoundError):
        await serve_while_owned(switch, "shop", Never(), serve)


async def test_workloads_are_patched_only_while_their_namespace_is_ours() -> None:
    switch, workloads = Switch(), FakeWorkloads()
    fenced = FencedWorkloads(workloads, switch)
    ref = WorkloadRef("Deployment", "shop", "web")
    with pytest.raises(NotOwnerError):
        await fenced.patch(ref, {"spec": {}})
    switch.owned.add("shop")
    await fenced.patch(ref, {"spec": {}})
    assert len(workloads.patches) == 1
