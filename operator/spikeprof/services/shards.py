"""Sharded mode: this replica is one shard of a group, and serves the namespaces it claims.

Each shard holds the Lease `<prefix>-<identity>` (labelled with the group) and, every retry
period (and at once when what it serves changes), lists the group's Leases, decides its claims
(core.shard_handover) and renews its Lease with them. The live shards are the group's Leases
whose record changed within a lease duration on this process's own monotonic clock
(core.leases); a dead shard's claims are void.

The fence (`owns`): True only for a namespace this shard owns by its last decision, and only
until the earlier of (start of its last successful renew, start of its last successful list)
plus the renew deadline. The renew half is leader election's fence: a shard that cannot renew
stops acting before any other can judge its Lease expired. The list half bounds how stale the
view it acts on may be, which `may_claim` relies on to keep a returning shard from overlapping
with one that took its namespaces while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from spikeprof.adapters.kube import KubeError
from spikeprof.core.leases import Lease, Sighting, acquired, expired, may_acquire, observe
from spikeprof.core.shard_handover import (
    CLAIMS_ANNOTATION,
    GROUP_LABEL,
    decide,
    may_claim,
    parse_claims,
    render_claims,
)
from spikeprof.services.ownership import ServingCount, cancel_and_wait

log = logging.getLogger("spikeprof.shards")

WANTED_SECONDS = 10.0
"""A namespace counts as having sessions while anything asked `owns` about it this recently
(every session's daemon asks at least every ownership.WAIT_SECONDS while it waits)."""

SLOW_LOOK_SECONDS = 1.0
"""A look that takes longer, or starts this much late, is logged: the fence closes at 10 s."""

EXPIRY_MARGIN_SECONDS = 0.05
"""Look this long after a Lease is due to expire (and never sooner than this after a look)."""


class ShardLeases(Protocol):
    """What a shard does with Leases (adapters.leases.LeaseClient in the operator)."""

    async def read(self, name: str) -> Lease | None: ...

    async def create(self, lease: Lease) -> Lease: ...

    async def update(self, lease: Lease) -> Lease: ...

    async def list_selected(self, selector: str) -> list[Lease]: ...


class ShardMembership:
    """services.ownership.Ownership for one shard of a group."""

    def __init__(
        self,
        leases: ShardLeases,
        *,
        prefix: str,
        identity: str,
        lease_seconds: int,
        renew_deadline_seconds: float,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.lease_name = f"{prefix}-{identity}"
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline_seconds
        self.retry = retry_seconds
        self.clock = clock
        self.served = ServingCount(on_change=self._poke)
        self.others: dict[str, frozenset[str]] = {}
        """The other live shards (by identity) and their claims, as last seen."""
        self.claimed: frozenset[str] = frozenset()
        """This shard's claims as last written to its Lease."""
        self._owned: frozenset[str] = frozenset()
        self._sightings: dict[str, Sighting] = {}  # Lease name -> first sighting of its record
        self._own: Lease | None = None  # our Lease as last written or read
        self._renewed_at = -math.inf  # start of the last successful renew
        self._listed_at: float | None = None  # start of the last successful list
        self._joined_at: float | None = None  # when the renew that (re)joined us returned
        self._asked: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- services.ownership.Ownership ----------------------------------------------------------

    def owns(self, namespace: str) -> bool:
        now = self.clock()
        if namespace not in self._asked:
            self._poke()  # a namespace newly with sessions: decide at once, not a retry later
        self._asked[namespace] = now
        return now < self.fence_until() and namespace in self._owned

    async def changed(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    def serving(self, namespace: str) -> contextlib.AbstractContextManager[None]:
        return self.served.hold(namespace)

    def ready(self) -> bool:
        """A live member of the group (its own Lease renewed within the renew deadline)."""
        return self.clock() < self._renewed_at + self.renew_deadline

    # --- the membership loop -----------------------------------------------------------------

    def fence_until(self) -> float:
        listed = self._listed_at if self._listed_at is not None else -math.inf
        return min(self._renewed_at, listed) + self.renew_deadline

    def owned(self) -> frozenset[str]:
        return self._owned if self.clock() < self.fence_until() else frozenset()

    async def start(self) -> None:
        """Join (create or renew the Lease) once, then look at the group every retry period."""
        await self.look()
        self._task = asyncio.create_task(self._run(), name=f"shard {self.lease_name}")

    async def close(self) -> None:
        """Stop renewing and release the Lease, so the others take over at their next look
        (client-go's ReleaseOnCancel), instead of a lease duration later."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        self._owned = frozenset()
        self._notify()
        if self._own is None or self._own.holder != self.identity:
            return
        released = dataclasses.replace(
            self._own,
            holder=None,
            duration_seconds=1,
            renew_time=datetime.datetime.now(datetime.UTC),
            annotations={**self._own.annotations, CLAIMS_ANNOTATION: ""},
        )
        try:
            async with asyncio.timeout(self.renew_deadline):
                await self.leases.update(released)
        # Not released: it expires on its own a lease duration later, as after a crash.
        except (KubeError, TimeoutError) as error:
            log.warning("Could not release Lease %s: %s", self.lease_name, error)
        else:
            log.info("Released Lease %s.", self.lease_name)

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.look()
            except asyncio.CancelledError:
                raise
            except Exception:  # the shard must keep trying; its fence closes meanwhile
                log.exception("The shard's look at its group failed; trying again.")
            pause = self._until_next_look()
            waiting = self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            took, late = waiting - started, self.clock() - waiting - pause
            if max(took, late) > SLOW_LOOK_SECONDS:
                # Past the renew deadline the fence closes: say why, before it does.
                log.warning(
                    "The shard's look at its group took %.1f s and began %.1f s late (an API "
                    "server slow to answer, or this process's event loop busy).",
                    took,
                    max(late, 0.0),
                )

    def _until_next_look(self) -> float:
        """A retry period, or less: the moment another shard's Lease would expire on our
        clock, so that its namespaces are taken then, not up to a retry period later."""
        now = self.clock()
        expiries = [
            sighting.seen_at + sighting.lease.duration_seconds
            for name, sighting in self._sightings.items()
            if name != self.lease_name and sighting.lease.held and not expired(sighting, now)
        ]
        soonest = min(expiries, default=math.inf) - now + EXPIRY_MARGIN_SECONDS
        return max(EXPIRY_MARGIN_SECONDS, min(self.retry, soonest))

    async def look(self) -> None:
        """List the group, decide, renew our Lease with the claims decided."""
        await self._list()
        joining = self.clock() >= self._renewed_at + self.renew_deadline
        now = self.clock()
        self._asked = {ns: t for ns, t in self._asked.items() if now - t < WANTED_SECONDS}
        serving = self.served.namespaces()
        # A (re)joined shard acts nowhere, and claims nothing, for a renew deadline and a retry.
        settled = (
            not joining
            and self._joined_at is not None
            and now >= self._joined_at + self.renew_deadline + self.retry
        )
        claiming = settled and may_claim(
            now=now,
            joined_at=self._joined_at,
            listed_at=self._listed_at,
            renew_deadline=self.renew_deadline,
            retry=self.retry,
        )
        handover = decide(
            self.identity,
            self.others,
            wanted=frozenset(self._asked) | serving,
            # Back from a lapsed fence: whatever was claimed before may have been taken.
            claimed=serving if joining else self.claimed,
            serving=serving,
            claiming=claiming,
        )
        previous = self._owned
        # Losing a namespace takes effect now, whatever the write does.
        self._owned &= handover.owned
        if await self._renew(handover.claims):
            if joining:
                self._joined_at = self.clock()
                log.info(
                    "Shard %s joined group %s; it claims namespaces from %.0f s on.",
                    self.identity,
                    self.prefix,
                    self.renew_deadline + self.retry,
                )
            self.claimed = handover.claims
            self._owned = handover.owned if settled else frozenset()
        if self._owned != previous:
            log.info(
                "Shard %s serves %d namespace(s); took %s; gave up %s.",
                self.identity,
                len(self._owned),
                ", ".join(sorted(self._owned - previous)) or "none",
                ", ".join(sorted(previous - self._owned)) or "none",
            )
            self._notify()

    async def _list(self) -> None:
        started = self.clock()
        try:
            async with asyncio.timeout(self.renew_deadline):
                found = await self.leases.list_selected(f"{GROUP_LABEL}={self.prefix}")
        # The view ages, and the fence closes once it is older than the renew deadline.
        except (KubeError, TimeoutError) as error:
            log.warning("Could not list the shard group %s: %s", self.prefix, error)
            return
        now = self.clock()
        sightings: dict[str, Sighting] = {}
        others: dict[str, frozenset[str]] = {}
        for lease in found:
            sighting = observe(self._sightings.get(lease.name), lease, now)
            sightings[lease.name] = sighting
            if lease.name == self.lease_name:
                if self._own is None or lease.resource_version != self._own.resource_version:
                    self._own = lease  # written by someone else: update from what is there
                continue
            if lease.holder and lease.holder != self.identity and not expired(sighting, now):
                others[lease.holder] = parse_claims(lease.annotations.get(CLAIMS_ANNOTATION))
        gone = set(self.others) - set(others)
        came = set(others) - set(self.others)
        if gone or came:
            log.info(
                "Live shards of %s: %s (left: %s; joined: %s).",
                self.prefix,
                ", ".join(sorted({self.identity, *others})),
                ", ".join(sorted(gone)) or "none",
                ", ".join(sorted(came)) or "none",
            )
        self._sightings = sightings
        self.others = others
        self._listed_at = started

    async def _renew(self, claims: frozenset[str]) -> bool:
        """Write our Lease (creating it, or taking it back) with `claims`; True when written."""
        started = self.clock()
        wall = datetime.datetime.now(datetime.UTC)
        own = self._own
        if own is not None and own.holder and own.holder != self.identity:
            sighting = self._sightings.get(self.lease_name)
            if sighting is not None and not may_acquire(sighting, self.identity, started):
                log.warning(
                    "Lease %s is held by %s: two replicas share identity %s?",
                    self.lease_name,
                    own.holder,
                    self.identity,
                )
                return False
        lease = acquired(
            own,
            name=self.lease_name,
            identity=self.identity,
            duration_seconds=self.lease_seconds,
            wall_now=wall,
        )
        lease = dataclasses.replace(
            lease,
            labels={**lease.labels, GROUP_LABEL: self.prefix},
            annotations={**lease.annotations, CLAIMS_ANNOTATION: render_claims(claims)},
        )
        try:
            # client-go bounds a renewal by the renew deadline; one that lands later than that
            # extends nothing here (the fence counts only from a renewal known to succeed).
            async with asyncio.timeout(self.renew_deadline):
                if own is None:
                    written = await self.leases.create(lease)
                else:
                    written = await self.leases.update(lease)
        except (KubeError, TimeoutError) as error:
            # A conflict (or a Lease that exists after all): read it again, decide next time.
            log.warning("Could not renew Lease %s: %s", self.lease_name, error or "timed out")
            with contextlib.suppress(KubeError, TimeoutError):
                async with asyncio.timeout(self.retry):
                    self._own = await self.leases.read(self.lease_name)
            return False
        self._own = written
        self._renewed_at = started
        return True

    def _poke(self) -> None:
        self._wake.set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def describe(self) -> Mapping[str, object]:
        """What this shard believes now (for logs and tests)."""
        return {
            "identity": self.identity,
            "live": sorted({self.identity, *self.others}),
            "claimed": sorted(self.claimed),
            "owned": sorted(self.owned()),
        }
