"""Which namespaces this replica may act in, and the fence every action passes first.

One replica (the default) owns every namespace. With leader election, the leader owns them all
and a standby none; with shards, each live shard owns the namespaces rendezvous hashing gives it
(core.shards). Whatever the mode, the rest of the operator asks only this:

- `owns(namespace)`: may act there now. It is a fence, not a hint: it turns False before the
  replica's lease can expire anywhere else, so no two replicas act at once. Every status write
  (`FencedStatusWriter`), workload patch (`FencedWorkloads`), event (adapters.events, when
  sent) and every capture's commit asks it first.
- `changed()`: wakes when ownership may have changed, so that waiting sessions start at once.
- `serving(namespace)`: held while a session of the namespace is being served here. Shards
  publish what they serve, and a namespace moves only once its previous shard let it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

from spikeprof.core.arming import WorkloadRef
from spikeprof.core.pods import PodInfo
from spikeprof.errors import SpikeprofError
from spikeprof.services.arming import Workloads
from spikeprof.services.status_outbox import StatusPatcher

log = logging.getLogger("spikeprof.ownership")

WAIT_SECONDS = 1.0
"""How long a session that is not ours waits before asking again (changes also wake it)."""


FENCE_LOOK_SECONDS = 0.1
"""How often a status write under way asks whether the fence is still open."""


class NotOwnerError(SpikeprofError):
    """This replica may no longer act in the namespace (leadership or the shard moved)."""


class StopFlag(Protocol):
    def __bool__(self) -> bool: ...


class Ownership(Protocol):
    def owns(self, namespace: str) -> bool: ...

    async def changed(self, at_most: float) -> None:
        """Return when ownership may have changed, or after `at_most` seconds."""
        ...

    def serving(self, namespace: str) -> contextlib.AbstractContextManager[None]: ...

    def ready(self) -> bool:
        """Serving (leader, or a live shard): the readiness probe's answer."""
        ...


class ServingCount:
    """How many sessions of each namespace are being served here (what a shard publishes)."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._count: Counter[str] = Counter()
        self._on_change = on_change

    @contextlib.contextmanager
    def hold(self, namespace: str) -> Iterator[None]:
        self._count[namespace] += 1
        if self._count[namespace] == 1:
            self._on_change()
        try:
            yield
        finally:
            self._count[namespace] -= 1
            if self._count[namespace] <= 0:
                del self._count[namespace]
                self._on_change()

    def namespaces(self) -> frozenset[str]:
        return frozenset(self._count)


class EveryNamespace:
    """One replica: it owns every namespace, always."""

    def __init__(self) -> None:
        self.served = ServingCount()

    def owns(self, namespace: str) -> bool:
        return True

    async def changed(self, at_most: float) -> None:
        await asyncio.sleep(at_most)

    def serving(self, namespace: str) -> contextlib.AbstractContextManager[None]:
        return self.served.hold(namespace)

    def ready(self) -> bool:
        return True


def fence(ownership: Ownership, namespace: str) -> None:
    """Raise NotOwnerError unless this replica may still act in `namespace`."""
    if not ownership.owns(namespace):
        raise NotOwnerError(f"this replica no longer serves namespace {namespace}")


class FencedStatusWriter:
    """A StatusPatcher that writes only while this replica owns the session's namespace."""

    def __init__(self, writer: StatusPatcher, ownership: Ownership) -> None:
        self.writer = writer
        self.ownership = ownership

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        fence(self.ownership, namespace)
        # The write must end while the fence is open: one still under way when it closes is
        # cancelled (the new owner writes from the status it reads).
        writing = asyncio.ensure_future(self.writer.patch(namespace, name, status))
        try:
            while True:
                done, _ = await asyncio.wait({writing}, timeout=FENCE_LOOK_SECONDS)
                if done:
                    writing.result()  # its error, if any
                    return
                fence(self.ownership, namespace)
        finally:
            writing.cancel()


class FencedWorkloads:
    """Workloads (services.arming) whose pod templates are patched only while this replica owns
    their namespace: arming and disarming are actions like any other."""

    def __init__(self, workloads: Workloads, ownership: Ownership) -> None:
        self.workloads = workloads
        self.ownership = ownership

    async def owner_workload(self, namespace: str, pod: PodInfo) -> WorkloadRef | None:
        return await self.workloads.owner_workload(namespace, pod)

    async def annotations(self, ref: WorkloadRef) -> tuple[dict[str, str], dict[str, str]]:
        return await self.workloads.annotations(ref)

    async def patch(self, ref: WorkloadRef, body: Mapping[str, Any]) -> None:
        fence(self.ownership, ref.namespace)
        await self.workloads.patch(ref, body)


class _WhileOwned:
    """A stop flag: set once kopf stops the daemon or this replica stops owning the namespace."""

    def __init__(self, stopped: StopFlag, ownership: Ownership, namespace: str) -> None:
        self.stopped = stopped
        self.ownership = ownership
        self.namespace = namespace

    def __bool__(self) -> bool:
        return bool(self.stopped) or not self.ownership.owns(self.namespace)


async def serve_while_owned(
    ownership: Ownership,
    namespace: str,
    stopped: StopFlag,
    serve: Callable[[StopFlag], Awaitable[None]],
) -> None:
    """Run `serve` whenever this replica owns `namespace`, until `stopped`.

    `serve` gets a stop flag that is also set when ownership goes; it returns at its next look,
    and is started again (with fresh state: what must survive lives in status) when ownership
    comes back.
    """
    while not stopped:
        if not ownership.owns(namespace):
            await ownership.changed(WAIT_SECONDS)
            continue
        with ownership.serving(namespace):
            try:
                await serve(_WhileOwned(stopped, ownership, namespace))
            except Exception:
                if ownership.owns(namespace):
                    raise  # a real failure: kopf logs it and restarts the daemon
                # Failed after the fence closed (e.g. a replica paused past its lease wakes to
                # find its staging directory taken over): nothing was committed; stand by.
                log.info("A session of %s stopped after this replica lost it.", namespace)
        if not stopped and ownership.owns(namespace):
            # serve returned on its own (the session is being deleted): do not spin.
            await ownership.changed(WAIT_SECONDS)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel `task` until it is done.

    Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as its timeout fires
    (it raises TimeoutError instead), so a loop that suppresses TimeoutError would go on after
    one cancel(); asking again until the task is done ends it either way.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
