"""ShardMembership over a Lease store that keeps resourceVersions as the API server does.

Each test drives the shards' looks by hand on a fake monotonic clock, so that the fence (renew
and list age), the join period and expiry on the observer's own clock are checked exactly. The
real API server is used by tests/e2e/test_shard_membership.py and tests/e2e/test_shards.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

from spikeprof.adapters.kube import ApiUnavailableError
from spikeprof.adapters.leases import LeaseConflictError
from spikeprof.core.leases import Lease
from spikeprof.core.shard_handover import CLAIMS_ANNOTATION, parse_claims
from spikeprof.core.shards import owner
from spikeprof.services.shards import ShardMembership

NAMESPACES = [f"team-{i}" for i in range(12)]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """Leases by name; each write bumps the resourceVersion and a stale one is a conflict."""

    def __init__(self) -> None:
        self.stored: dict[str, Lease] = {}
        self.version = 0
        self.failing: set[str] = set()  # verbs that fail as if the API server were away

    def _check(self, verb: str) -> None:
        if verb in self.failing:
            raise ApiUnavailableError("the API server is unreachable")

    def _store(self, lease: Lease) -> Lease:
        self.version += 1
        stored = dataclasses.replace(lease, resource_version=str(self.version))
        self.stored[lease.name] = stored
        return stored

    async def read(self, name: str) -> Lease | None:
        self._check("read")
        return self.stored.get(name)

    async def create(self, lease: Lease) -> Lease:
        self._check("create")
        if lease.name in self.stored:
            raise LeaseConflictError("exists")
        return self._store(lease)

    async def update(self, lease: Lease) -> Lease:
        self._check("update")
        if self.stored[lease.name].resource_version != lease.resource_version:
            raise LeaseConflictError("stale resourceVersion")
        return self._store(lease)

    async def list_selected(self, selector: str) -> list[Lease]:
        self._check("list")
        key, value = selector.split("=")
        return [lease for lease in self.stored.values() if lease.labels.get(key) == value]

    def claims(self, identity: str) -> frozenset[str]:
        return parse_claims(self.stored[f"shards-{identity}"].annotations.get(CLAIMS_ANNOTATION))


def shard(leases: FakeLeases, identity: str, clock: Clock) -> ShardMembership:
    return ShardMembership(
        leases,
        prefix="shards",
        identity=identity,
        lease_seconds=15,
        renew_deadline_seconds=10.0,
        retry_seconds=2.0,
        clock=clock,
    )


async def run_for(clock: Clock, seconds: float, *members: ShardMembership) -> None:
    """Every member looks every retry period (as its loop does), for `seconds`."""
    end = clock.now + seconds
    while clock.now + 2.0 <= end:
        clock.now += 2.0
        for member in members:
            await member.look()
            ask_all(member)
    clock.now = end


def ask_all(member: ShardMembership) -> set[str]:
    """What the session daemons do: ask about every namespace with sessions."""
    return {ns for ns in NAMESPACES if member.owns(ns)}


async def test_a_joining_shard_acts_nowhere_for_a_renew_deadline_and_a_retry() -> None:
    leases, clock = FakeLeases(), Clock()
    alone = shard(leases, "s0", clock)
    await alone.look()
    assert leases.stored["shards-s0"].holder == "s0"
    assert alone.ready()
    assert ask_all(alone) == set()
    await run_for(clock, 11.9, alone)
    await alone.look()
    assert ask_all(alone) == set()
    assert leases.claims("s0") == frozenset()
    clock.now += 0.1
    await alone.look()
    # Claimed in the Lease first; owned from then on.
    assert leases.claims("s0") == set(NAMESPACES)
    assert ask_all(alone) == set(NAMESPACES)


async def test_the_fence_closes_a_renew_deadline_after_the_last_renewal_began() -> None:
    leases, clock = FakeLeases(), Clock()
    member = shard(leases, "s0", clock)
    await member.look()
    ask_all(member)
    await run_for(clock, 12.0, member)
    assert ask_all(member) == set(NAMESPACES)
    leases.failing = {"update", "read"}
    renewed_at = clock.now
    clock.now = renewed_at + 9.9
    await member.look()  # fails to renew
    assert ask_all(member) == set(NAMESPACES)
    clock.now = renewed_at + 10.0
    assert ask_all(member) == set()
    assert not member.ready()


async def test_the_fence_also_closes_when_the_view_of_the_group_is_too_old() -> None:
    leases, clock = FakeLeases(), Clock()
    member = shard(leases, "s0", clock)
    await member.look()
    ask_all(member)
    await run_for(clock, 12.0, member)
    listed_at = clock.now
    leases.failing = {"list"}
    clock.now = listed_at + 5.0
    await member.look()  # renews, but cannot list
    assert member.ready()
    clock.now = listed_at + 10.0
    assert ask_all(member) == set()


async def test_three_shards_split_the_namespaces_and_a_dead_ones_claims_are_void() -> None:
    leases, clock = FakeLeases(), Clock()
    members = {name: shard(leases, name, clock) for name in ("s0", "s1", "s2")}
    for member in members.values():
        await member.look()
        ask_all(member)
    await run_for(clock, 16.0, *members.values())
    expected = {n: {ns for ns in NAMESPACES if owner(ns, tuple(members)) == n} for n in members}
    assert {n: ask_all(m) for n, m in members.items()} == expected

    # s1 stops renewing (killed). Its claims stay in its Lease, and count until its record has
    # gone unchanged for a lease duration on the others' clock.
    dead = members.pop("s1")
    assert leases.claims("s1") == expected["s1"]
    last_seen = clock.now
    await run_for(clock, 14.9, *members.values())
    for member in members.values():
        await member.look()
    assert {n: ask_all(m) for n, m in members.items()} == {n: expected[n] for n in members}
    # s0 looks before s1 in each round: it saw s1's last record one retry period later.
    clock.now = last_seen + 17.0
    for member in members.values():
        await member.look()
    survivors = ("s0", "s2")
    after = {n: {ns for ns in NAMESPACES if owner(ns, survivors) == n} for n in survivors}
    assert {n: ask_all(m) for n, m in members.items()} == after
    assert dead.owned() == frozenset()  # its own fence closed long before


async def test_a_namespace_moves_to_a_new_shard_only_after_its_owner_let_it_go() -> None:
    leases, clock = FakeLeases(), Clock()
    old = shard(leases, "s0", clock)
    await old.look()
    ask_all(old)
    await run_for(clock, 12.0, old)
    assert ask_all(old) == set(NAMESPACES)
    held = {ns: old.serving(ns) for ns in NAMESPACES}
    for context in held.values():
        context.__enter__()  # every session is being served on s0
    new = shard(leases, "s1", clock)
    await new.look()
    ask_all(new)
    await run_for(clock, 12.5, new, old)
    await new.look()
    await old.look()  # sees s1: stops acting where hashing now says s1 ...
    moving = {ns for ns in NAMESPACES if owner(ns, ("s0", "s1")) == "s1"}
    assert ask_all(old) == set(NAMESPACES) - moving
    assert moving <= leases.claims("s0")  # ... but claims them while they are served there
    await new.look()
    assert ask_all(new) == set()  # so s1 waits
    for ns in moving:
        held[ns].__exit__(None, None, None)  # the sessions stop at their next look
    await old.look()
    assert not (moving & leases.claims("s0"))
    await new.look()
    assert ask_all(new) == moving
    assert leases.claims("s1") == moving


async def test_a_shard_back_from_a_lapsed_fence_waits_out_a_join_period_again() -> None:
    leases, clock = FakeLeases(), Clock()
    member = shard(leases, "s0", clock)
    await member.look()
    ask_all(member)
    await run_for(clock, 12.0, member)
    assert ask_all(member) == set(NAMESPACES)
    clock.now += 30.0  # stopped (SIGSTOP) past its lease
    await member.look()
    assert ask_all(member) == set()
    assert leases.claims("s0") == frozenset()  # nothing served: whatever it claimed is dropped
    await run_for(clock, 12.1, member)
    await member.look()
    assert ask_all(member) == set(NAMESPACES)


async def test_closing_releases_the_lease_with_no_claims() -> None:
    leases, clock = FakeLeases(), Clock()
    member = shard(leases, "s0", clock)
    await member.start()
    ask_all(member)
    await member.close()
    stored = leases.stored["shards-s0"]
    assert (stored.holder, stored.duration_seconds) == (None, 1)
    assert leases.claims("s0") == frozenset()
    assert ask_all(member) == set()


async def test_the_next_look_comes_when_another_shards_lease_would_expire() -> None:
    leases, clock = FakeLeases(), Clock()
    other, member = shard(leases, "s1", clock), shard(leases, "s0", clock)
    await other.look()
    clock.now += 1.0
    await member.look()
    assert member._until_next_look() == 2.0  # a retry period
    clock.now += 13.0  # s1's record, first seen (by s0) 13 s ago, expires in 2 s
    assert member._until_next_look() == 2.0
    clock.now += 1.5
    assert abs(member._until_next_look() - 0.55) < 1e-9


async def test_changed_wakes_when_ownership_changes() -> None:
    leases, clock = FakeLeases(), Clock()
    member = shard(leases, "s0", clock)
    await member.look()
    ask_all(member)
    await run_for(clock, 11.9, member)
    clock.now += 0.2
    waiting = asyncio.create_task(member.changed(60))
    await asyncio.sleep(0)
    await member.look()
    await asyncio.wait_for(waiting, 1)
