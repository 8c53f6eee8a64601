"""Active/standby: the replica that holds one Lease serves every namespace; the others wait.

`LeaderElection` is an Ownership (services.ownership) driven by a coordination.k8s.io Lease, as
client-go's leader election drives controller-runtime (15 s lease, 10 s renew deadline, 2 s
retry by default; core.leases has the rules). Its own asyncio task tries to acquire or renew
the Lease every retry period:

- `owns()` is True only until the start of the last successful renew request plus the renew
  deadline, on this process's monotonic clock: a leader that cannot renew (API server away,
  process paused by SIGSTOP, event loop starved) stops acting before anyone else may take the
  Lease, whatever happens to its requests afterwards.
- A standby takes the Lease only once its record has not changed for a whole lease duration on
  the standby's own clock, and only through an update naming the resourceVersion it read.
- Leadership lost, the replica stays up as a standby and may lead again later: its sessions
  stop at their next look (the fence), and start afresh from status when leadership returns.
  controller-runtime exits instead, because a Go controller cannot tell whether all its
  goroutines stopped; here every action passes the fence, and a restart would only add the
  pod's restart back-off to the next failover.
- Closing releases the Lease (client-go's ReleaseOnCancel), so that a rolling update hands over
  at the standby's next try instead of after a whole lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from spikeprof.adapters.kube import KubeError
from spikeprof.adapters.leases import LeaseConflictError
from spikeprof.core.leases import Lease, Sighting, acquired, fence_deadline, may_acquire, observe
from spikeprof.services.ownership import ServingCount, cancel_and_wait

log = logging.getLogger("spikeprof.leadership")

RELEASE_SECONDS = 5.0
"""How long closing waits for the release; past it, the standby waits out the lease instead."""


class LeaseStore(Protocol):
    """The Leases of one namespace (adapters.leases.LeaseClient)."""

    async def read(self, name: str) -> Lease | None: ...

    async def create(self, lease: Lease) -> Lease: ...

    async def update(self, lease: Lease) -> Lease: ...

    async def release(self, lease: Lease) -> Lease: ...


class LeaderElection:
    """Ownership of every namespace while this replica holds the Lease `name`."""

    def __init__(
        self,
        leases: LeaseStore,
        *,
        name: str,
        identity: str,
        lease_seconds: int,
        renew_deadline_seconds: float,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.leases = leases
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline_seconds
        self.retry = retry_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self.served = ServingCount()
        self._fence_until = -math.inf
        self._sighting: Sighting | None = None
        self._mine: Lease | None = None  # as this replica last wrote it, while it holds it
        self._leading = False  # as last announced
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fence_timer: asyncio.TimerHandle | None = None

    # --- Ownership ---------------------------------------------------------------------------

    def owns(self, namespace: str) -> bool:
        return self.clock() < self._fence_until

    def ready(self) -> bool:
        return self.owns("")

    async def changed(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    def serving(self, namespace: str) -> contextlib.AbstractContextManager[None]:
        return self.served.hold(namespace)

    # --- the election --------------------------------------------------------------------------

    async def start(self) -> None:
        """Try once (so that a sole replica leads before its sessions start), then keep trying
        every retry period in a task of its own."""
        await self.try_once()
        self._task = asyncio.create_task(self._run(), name=f"leader election {self.name}")

    async def close(self) -> None:
        """Stop acting, stop the task, and give the Lease up if this replica holds it."""
        holding = self._mine if self.owns("") else None
        self._fence_until = -math.inf
        self._announce()
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        if self._task is not None:
            await cancel_and_wait(self._task)
        if holding is None:
            return
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                await self.leases.release(holding)
        # Not released: the standby takes over once the lease runs out, as after a crash.
        except (KubeError, TimeoutError) as error:
            log.warning("Could not release Lease %s: %s", self.name, error)
        else:
            log.info("Released Lease %s: a standby may lead at its next try.", self.name)

    async def _run(self) -> None:
        while True:
            started = self.clock()
            await self.try_once()
            # Every retry period from the start of the last try; a slow try is followed at once.
            await asyncio.sleep(max(0.0, started + self.retry - self.clock()))

    async def try_once(self) -> None:
        """One acquire-or-renew, bounded so that a hung request leaves time for another."""
        started = self.clock()
        try:
            async with asyncio.timeout(self.renew_deadline / 2):
                await self._acquire_or_renew(started)
        # Someone wrote the Lease since it was read: read it again at the next try.
        except LeaseConflictError as error:
            self._mine = None
            log.info("Lease %s changed meanwhile: %s", self.name, error)
        # The API server is away, slow or refuses: leading goes on until the fence closes.
        except (KubeError, TimeoutError) as error:
            log.warning("Could not acquire or renew Lease %s: %s", self.name, error or "timeout")
        self._announce()

    async def _acquire_or_renew(self, started: float) -> None:
        if self._mine is not None and self.owns(""):
            # The holder writes over its own last version: one request per renewal. A conflict
            # means someone else wrote it, and the next try reads it again.
            written = await self.leases.update(self._renewal(self._mine))
            self._held(written, started)
            return
        lease = await self.leases.read(self.name)
        now = self.clock()
        if lease is None:
            self._held(await self.leases.create(self._renewal(None)), started)
            return
        self._sighting = observe(self._sighting, lease, now)
        if not may_acquire(self._sighting, self.identity, now):
            self._mine = None
            if lease.holder != self.identity:
                self._fence_until = -math.inf  # another holder: it leads, not we
            return
        self._held(await self.leases.update(self._renewal(lease)), started)

    def _renewal(self, lease: Lease | None) -> Lease:
        return acquired(
            lease,
            name=self.name,
            identity=self.identity,
            duration_seconds=self.lease_seconds,
            wall_now=self.wall_clock(),
        )

    def _held(self, written: Lease, started: float) -> None:
        self._mine = written
        self._sighting = Sighting(written, self.clock())
        self._fence_until = max(self._fence_until, fence_deadline(started, self.renew_deadline))
        # Said as soon as the fence closes, not at the end of a try that hangs.
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        remaining = self._fence_until - self.clock()
        self._fence_timer = asyncio.get_running_loop().call_later(remaining, self._announce)

    def _announce(self) -> None:
        """Wake those waiting in `changed` when leading started or stopped."""
        leading = self.owns("")
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            log.info("%s leads: it holds Lease %s and serves every namespace.", *self._who())
        else:
            log.warning("%s no longer leads (Lease %s): its sessions stop.", *self._who())
        self._changed.set()
        self._changed = asyncio.Event()

    def _who(self) -> tuple[str, str]:
        return self.identity, self.name
