"""coordination.k8s.io Leases as leader election reads them: the record, and what it allows.

The rules are client-go's (tools/leaderelection/leaderelection.go), which controller-runtime
uses with a 15 s lease, a 10 s renew deadline and a 2 s retry:

- A candidate never compares its wall clock with the renewTime another process wrote. It notes,
  on its own monotonic clock, when it first saw the current record (`Sighting`); the Lease has
  expired once `leaseDurationSeconds` have passed on that clock with no change (client-go's
  `observedTime`, "isLeaseValid" in tryAcquireOrRenew).
- The holder acts only until the start of its last successful renew request plus the renew
  deadline (`fence_deadline`). Any other candidate saw that renewal after the request started,
  and waits a whole lease duration from then, which is longer than the renew deadline: the old
  holder has stopped before anyone else may start.
- Every write carries the resourceVersion read (optimistic concurrency, in the adapter): of two
  candidates that both judge a Lease expired, one update fails with a conflict.

Wall-clock times (`renew_time`, `acquire_time`) are written for people and other tools
(`kubectl get lease`), and are never used to decide anything here.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lease:
    """A Lease as stored: its spec, and the metadata leader election and shards use."""

    name: str
    holder: str | None
    """spec.holderIdentity; None (or "") means nobody holds it (released)."""
    duration_seconds: int
    """spec.leaseDurationSeconds: how long others wait after the last change they saw."""
    renew_time: datetime.datetime | None = None
    acquire_time: datetime.datetime | None = None
    transitions: int = 0
    """spec.leaseTransitions: how many times the holder changed."""
    resource_version: str | None = None
    """What an update must name, so that a concurrent write makes it fail (409 Conflict)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return bool(self.holder)

    def record(self) -> tuple[object, ...]:
        """What a change of shows the holder is alive (client-go compares the same fields)."""
        return (
            self.holder or None,
            self.duration_seconds,
            self.renew_time,
            self.acquire_time,
            self.transitions,
        )


@dataclass(frozen=True)
class Sighting:
    """A Lease record, and when (local monotonic seconds) this process first saw it so."""

    lease: Lease
    seen_at: float


def observe(previous: Sighting | None, lease: Lease, now: float) -> Sighting:
    """The sighting after reading `lease` at monotonic `now`.

    An unchanged record keeps its first sighting time: a holder that stopped renewing does not
    look alive just because it was read again.
    """
    if previous is not None and previous.lease.record() == lease.record():
        return Sighting(lease, previous.seen_at)
    return Sighting(lease, now)


def expired(sighting: Sighting, now: float) -> bool:
    """Nobody holds the Lease, or its record has not changed for a whole lease duration."""
    if not sighting.lease.held:
        return True
    return now >= sighting.seen_at + sighting.lease.duration_seconds


def may_acquire(sighting: Sighting | None, identity: str, now: float) -> bool:
    """`identity` may write itself into the Lease (None: the Lease does not exist yet)."""
    if sighting is None:
        return True
    return sighting.lease.holder == identity or expired(sighting, now)


def fence_deadline(renew_started: float, renew_deadline: float) -> float:
    """Until when (monotonic) the holder may act after a renew request that started at
    `renew_started` succeeded. With renew deadline < lease duration it ends before any other
    candidate can judge the Lease expired."""
    return renew_started + renew_deadline


def acquired(
    lease: Lease | None,
    *,
    name: str,
    identity: str,
    duration_seconds: int,
    wall_now: datetime.datetime,
) -> Lease:
    """The Lease that makes `identity` its holder (renewing, when it holds it already)."""
    if lease is not None and lease.holder == identity:
        return dataclasses.replace(lease, duration_seconds=duration_seconds, renew_time=wall_now)
    if lease is None:
        return Lease(
            name=name,
            holder=identity,
            duration_seconds=duration_seconds,
            renew_time=wall_now,
            acquire_time=wall_now,
        )
    return dataclasses.replace(
        lease,
        holder=identity,
        duration_seconds=duration_seconds,
        renew_time=wall_now,
        acquire_time=wall_now,
        # As client-go: every change of holder counts, from a released Lease too.
        transitions=lease.transitions + 1,
    )


def released(lease: Lease, wall_now: datetime.datetime) -> Lease:
    """The Lease given up by its holder (client-go's release: no holder, 1 s duration), so that
    another candidate takes it at its next try instead of waiting out the lease."""
    return dataclasses.replace(
        lease, holder=None, duration_seconds=1, renew_time=wall_now, acquire_time=wall_now
    )
