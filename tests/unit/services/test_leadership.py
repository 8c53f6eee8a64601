"""Leader election over a Lease store that keeps resourceVersions as the API server does.

Each test drives the candidates' tries by hand on one fake monotonic clock per replica, so that
the timings of the guarantee (fence before expiry, expiry on the observer's own clock) are
checked exactly. The real API server is used by tests/e2e/test_leader_election.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from spikeprof.adapters.kube import ApiUnavailableError
from spikeprof.adapters.leases import LeaseConflictError
from spikeprof.core.leases import Lease, released
from spikeprof.services.leadership import LeaderElection
from spikeprof.services.ownership import FencedStatusWriter, NotOwnerError

WALL = datetime.datetime(2026, 12, 2, 2, 0, 0, tzinfo=datetime.UTC)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """Leases by name, each write bumping the resourceVersion; a stale one is a conflict."""

    def __init__(self) -> None:
        self.stored: dict[str, Lease] = {}
        self.version = 0
        self.failing = False
        self.hanging = False
        self.writes: list[tuple[str, str | None]] = []  # (verb, holder)

    async def _io(self) -> None:
        if self.hanging:
            await asyncio.sleep(3600)
        if self.failing:
            raise ApiUnavailableError("the API server is unreachable")

    def _store(self, lease: Lease) -> Lease:
        self.version += 1
        stored = dataclasses.replace(lease, resource_version=str(self.version))
        self.stored[lease.name] = stored
        return stored

    async def read(self, name: str) -> Lease | None:
        await self._io()
        return self.stored.get(name)

    async def create(self, lease: Lease) -> Lease:
        await self._io()
        if lease.name in self.stored:
            raise LeaseConflictError("exists")
        self.writes.append(("create", lease.holder))
        return self._store(lease)

    async def update(self, lease: Lease) -> Lease:
        await self._io()
        if self.stored[lease.name].resource_version != lease.resource_version:
            raise LeaseConflictError("stale resourceVersion")
        self.writes.append(("update", lease.holder))
        return self._store(lease)

    async def release(self, lease: Lease) -> Lease:
        return await self.update(released(lease, WALL))


def candidate(leases: FakeLeases, identity: str, clock: Clock) -> LeaderElection:
    return LeaderElection(
        leases,
        name="spikeprof",
        identity=identity,
        lease_seconds=15,
        renew_deadline_seconds=10.0,
        retry_seconds=2.0,
        clock=clock,
        # Wall time moves with the replica's clock: each renewal writes a new renewTime.
        wall_clock=lambda: WALL + datetime.timedelta(seconds=clock.now),
    )


async def test_a_sole_replica_leads_from_its_first_try_and_owns_every_namespace() -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate(leases, "a", clock)
    await a.try_once()
    assert a.owns("shop") and a.owns("kube-system") and a.ready()
    assert leases.stored["spikeprof"].holder == "a"


async def test_a_standby_does_not_act_while_the_leader_renews() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    await a.try_once()
    for _ in range(20):  # 40 s of renewals every retry period
        await b.try_once()
        assert not b.owns("shop") and not b.ready()
        clock.now += 2.0
        await a.try_once()
        assert a.owns("shop")
    assert leases.stored["spikeprof"].holder == "a"


async def test_a_leader_that_cannot_renew_stops_before_the_standby_may_take_over() -> None:
    leases = FakeLeases()
    clock_a, clock_b = Clock(1000.0), Clock(5.0)  # unrelated clocks: only durations count
    a, b = candidate(leases, "a", clock_a), candidate(leases, "b", clock_b)
    await a.try_once()  # renewal started at a's 1000
    await b.try_once()  # b first sees that record at its 5
    leases.failing = True  # a is cut off from the API server (b is not; see below)
    step = 0.5
    a_stopped_at = b_led_at = None
    for tick in range(1, 60):
        clock_a.now += step
        clock_b.now += step
        await a.try_once()
        if a_stopped_at is None and not a.owns("shop"):
            a_stopped_at = tick * step
        leases.failing = False
        await b.try_once()
        leases.failing = True
        if b.owns("shop"):
            b_led_at = tick * step
            break
    assert a_stopped_at == 10.0  # the renew deadline after its last renewal began
    assert b_led_at == 15.0  # a whole lease after b saw the last change
    assert leases.stored["spikeprof"].holder == "b"
    assert leases.stored["spikeprof"].transitions == 1


async def test_a_renewal_that_hangs_does_not_extend_the_fence() -> None:
    leases, clock = FakeLeases(), Clock()
    a = LeaderElection(
        leases,
        name="spikeprof",
        identity="a",
        lease_seconds=15,
        renew_deadline_seconds=0.2,  # each try is cut at half of it (0.1 s of real time)
        retry_seconds=0.05,
        clock=clock,
        wall_clock=lambda: WALL,
    )
    await a.try_once()
    leases.hanging = True
    clock.now += 0.15
    await a.try_once()  # times out after 0.1 s
    assert a.owns("shop")  # still within 0.2 s of the renewal that succeeded
    clock.now += 0.1
    assert not a.owns("shop")


async def test_of_two_standbys_that_both_see_the_lease_expired_only_one_leads() -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate(leases, "a", clock)
    b, c = candidate(leases, "b", clock), candidate(leases, "c", clock)
    await a.try_once()
    await b.try_once()
    await c.try_once()
    clock.now += 16.0  # a died
    await asyncio.gather(b.try_once(), c.try_once())
    assert [b.owns("shop"), c.owns("shop")].count(True) == 1
    winner = "b" if b.owns("shop") else "c"
    assert leases.stored["spikeprof"].holder == winner
    assert leases.writes[-1] == ("update", winner) and len(leases.writes) == 2


async def test_a_released_lease_is_taken_at_the_standbys_next_try() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    await a.start()
    await b.try_once()
    await a.close()
    assert not a.owns("shop") and leases.stored["spikeprof"].holder is None
    clock.now += 2.0
    await b.try_once()
    assert b.owns("shop")


async def test_the_standby_is_woken_when_it_starts_to_lead() -> None:
    leases, clock = FakeLeases(), Clock()
    b = candidate(leases, "b", clock)
    waiting = asyncio.create_task(b.changed(at_most=60.0))
    await asyncio.sleep(0)
    await b.try_once()
    await asyncio.wait_for(waiting, 1.0)


async def test_a_former_leader_stays_a_standby_and_may_lead_again() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    await a.try_once()
    await b.try_once()
    clock.now += 15.0  # a was paused (SIGSTOP) for longer than its lease
    await b.try_once()
    assert b.owns("shop") and not a.owns("shop")
    await a.try_once()  # a wakes: it sees b's Lease and does not act
    assert not a.owns("shop") and leases.stored["spikeprof"].holder == "b"
    await b.close()
    clock.now += 2.0
    await a.try_once()
    assert a.owns("shop")
    assert leases.stored["spikeprof"].transitions == 2


async def test_closing_without_the_lease_writes_nothing() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    await a.try_once()
    await b.start()
    writes = len(leases.writes)
    await b.close()
    assert len(leases.writes) == writes


@pytest.mark.parametrize("error", [ApiUnavailableError("away"), LeaseConflictError("stale")])
async def test_a_failed_try_is_logged_and_the_election_goes_on(error: Exception) -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate(leases, "a", clock)

    async def refuse(lease: Lease) -> Lease:
        raise error

    leases.create = refuse  # type: ignore[method-assign]
    await a.try_once()
    assert not a.owns("shop")


class HangingWriter:
    def __init__(self) -> None:
        self.cancelled = False

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_status_write_still_under_way_when_the_fence_closes_is_cancelled() -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate(leases, "a", clock)
    await a.try_once()
    hanging = HangingWriter()
    writing = asyncio.create_task(FencedStatusWriter(hanging, a).patch("shop", "s", {}))
    await asyncio.sleep(0.05)
    clock.now += 10.0  # the renew deadline passed with no renewal
    with pytest.raises(NotOwnerError):
        await asyncio.wait_for(writing, 1.0)
    assert hanging.cancelled


async def test_a_standby_writes_no_status() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    await a.try_once()
    await b.try_once()
    hanging = HangingWriter()
    with pytest.raises(NotOwnerError):
        await FencedStatusWriter(hanging, b).patch("shop", "s", {})
    assert not hanging.cancelled  # never started
