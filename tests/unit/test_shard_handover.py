"""Shard handover: which namespaces a shard claims, serves and lets go, from the live shards'
claims; and, over simulated interleavings of three shards, that no namespace is ever owned by
two shards at once and every one ends up served by its rendezvous owner."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from spikeprof.core.shard_handover import (
    Handover,
    decide,
    may_claim,
    parse_claims,
    render_claims,
)
from spikeprof.core.shards import owner

SHARDS = ("s0", "s1", "s2")
NAMESPACES = frozenset(f"ns-{i}" for i in range(30))


def hashed_to(shard: str, shards: tuple[str, ...] = SHARDS) -> frozenset[str]:
    return frozenset(ns for ns in NAMESPACES if owner(ns, shards) == shard)


def test_claims_round_trip_through_the_annotation() -> None:
    assert parse_claims(render_claims(["b", "a", "b"])) == {"a", "b"}
    assert render_claims(["b", "a"]) == "a,b"
    assert parse_claims(None) == frozenset()
    assert parse_claims("") == frozenset()
    assert parse_claims(" a, ,b ") == {"a", "b"}


def test_a_lone_shard_claims_every_namespace_with_sessions() -> None:
    handover = decide(
        "s0", {}, wanted=NAMESPACES, claimed=frozenset(), serving=frozenset(), claiming=True
    )
    assert handover == Handover(NAMESPACES, NAMESPACES, NAMESPACES, frozenset())


def test_three_shards_each_claim_what_hashing_gives_them() -> None:
    others = {"s1": frozenset(), "s2": frozenset()}
    handover = decide(
        "s0", others, wanted=NAMESPACES, claimed=frozenset(), serving=frozenset(), claiming=True
    )
    assert handover.claims == handover.owned == handover.taking == hashed_to("s0")
    assert 0 < len(hashed_to("s0")) < len(NAMESPACES)


def test_a_shard_that_may_not_claim_yet_keeps_what_it_has_and_takes_nothing_new() -> None:
    mine = sorted(hashed_to("s0"))
    kept = frozenset(mine[:2])
    handover = decide(
        "s0",
        {"s1": frozenset(), "s2": frozenset()},
        wanted=NAMESPACES,
        claimed=kept,
        serving=frozenset(),
        claiming=False,
    )
    assert handover.claims == handover.owned == kept
    assert handover.taking == frozenset()


def test_a_namespace_another_live_shard_still_claims_waits_until_it_lets_go() -> None:
    ns = sorted(hashed_to("s0"))[0]
    # s1 served it before s0 joined: s0 waits, claiming nothing.
    others = {"s1": frozenset({ns}), "s2": frozenset()}
    waiting = decide(
        "s0", others, wanted=NAMESPACES, claimed=frozenset(), serving=frozenset(), claiming=True
    )
    assert ns not in waiting.claims and ns not in waiting.owned
    # s1 dropped its claim: s0 takes it.
    others = {"s1": frozenset(), "s2": frozenset()}
    taken = decide(
        "s0", others, wanted=NAMESPACES, claimed=frozenset(), serving=frozenset(), claiming=True
    )
    assert ns in taken.taking and ns in taken.owned


def test_a_namespace_hashed_to_another_live_shard_is_let_go_but_claimed_while_still_served() -> (
    None
):
    ns = sorted(hashed_to("s1"))[0]
    # s0 served it alone; s1 has joined.
    others = {"s1": frozenset(), "s2": frozenset()}
    still = decide(
        "s0",
        others,
        wanted=NAMESPACES,
        claimed=frozenset({ns}),
        serving=frozenset({ns}),
        claiming=True,
    )
    assert ns not in still.owned  # acting stops at once
    assert ns in still.claims  # the claim stays published while the session winds down
    assert still.letting_go == {ns}
    stopped = decide(
        "s0", others, wanted=NAMESPACES, claimed=still.claims, serving=frozenset(), claiming=True
    )
    assert ns not in stopped.claims and stopped.letting_go == frozenset()


def test_a_dead_shards_claims_are_void_so_its_namespaces_are_taken_by_their_next_choice() -> None:
    theirs = hashed_to("s1")
    # s1 is no longer among the live shards: whatever its Lease still says does not count.
    others = {"s2": frozenset(hashed_to("s2"))}
    handover = decide(
        "s0",
        others,
        wanted=NAMESPACES,
        claimed=hashed_to("s0"),
        serving=hashed_to("s0"),
        claiming=True,
    )
    second_choice = frozenset(ns for ns in theirs if owner(ns, ("s0", "s2")) == "s0")
    assert second_choice  # the test means something only if some move to s0
    assert handover.taking == second_choice
    assert handover.owned == hashed_to("s0") | second_choice


def test_a_namespace_claimed_twice_is_acted_on_by_neither_until_the_other_lets_go() -> None:
    ns = sorted(hashed_to("s0"))[0]
    # Defence in depth: should s1 still claim it (it took it while s0 was away), s0 holds back.
    handover = decide(
        "s0",
        {"s1": frozenset({ns}), "s2": frozenset()},
        wanted=NAMESPACES,
        claimed=frozenset({ns}),
        serving=frozenset(),
        claiming=True,
    )
    assert ns in handover.claims and ns not in handover.owned


def test_claims_of_namespaces_without_sessions_are_dropped_once_nothing_is_served_there() -> None:
    ns = sorted(hashed_to("s0"))[0]
    served = decide(
        "s0",
        {},
        wanted=frozenset(),
        claimed=frozenset({ns}),
        serving=frozenset({ns}),
        claiming=True,
    )
    assert served.claims == {ns} and served.owned == frozenset()
    gone = decide(
        "s0", {}, wanted=frozenset(), claimed=frozenset({ns}), serving=frozenset(), claiming=True
    )
    assert gone.claims == frozenset()


@pytest.mark.parametrize(
    ("now", "joined_at", "listed_at", "allowed"),
    [
        (100.0, None, 99.0, False),  # not a member yet
        (100.0, 80.0, None, False),  # never listed the group
        (100.0, 90.0, 99.5, False),  # joined 10 s ago: within renew deadline + retry
        (100.0, 88.0, 99.5, True),  # joined 12 s ago
        (100.0, 50.0, 97.0, False),  # the view is older than a retry period
        (100.0, 50.0, 98.0, True),
    ],
)
def test_claims_wait_a_renew_deadline_and_a_retry_after_joining_and_need_a_fresh_view(
    now: float, joined_at: float | None, listed_at: float | None, allowed: bool
) -> None:
    verdict = may_claim(
        now=now, joined_at=joined_at, listed_at=listed_at, renew_deadline=10.0, retry=2.0
    )
    assert verdict is allowed


# --- Three shards, interleaved -------------------------------------------------------------


@dataclass
class SimulatedShard:
    """One shard as services.shards runs it: claims written atomically; a session stops at its
    next look (the shard's next step) after ownership went."""

    name: str
    claimed: frozenset[str] = frozenset()
    owned: frozenset[str] = frozenset()
    serving: set[str] = field(default_factory=set)
    steps_since_join: int = 0

    def step(self, live: dict[str, SimulatedShard], join_steps: int) -> None:
        self.serving &= set(self.owned)  # sessions let go at their next look
        others = {n: s.claimed for n, s in live.items() if n != self.name}
        handover = decide(
            self.name,
            others,
            wanted=NAMESPACES,
            claimed=self.claimed,
            serving=frozenset(self.serving),
            claiming=self.steps_since_join >= join_steps,
        )
        self.claimed = handover.claims  # written to the Lease
        self.owned = handover.owned
        self.serving |= set(self.owned)  # served once owned
        self.steps_since_join += 1


def owners_of(live: dict[str, SimulatedShard]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {ns: [] for ns in NAMESPACES}
    for shard in live.values():
        for ns in shard.owned:
            found[ns].append(shard.name)
    return found


def run_until_settled(
    live: dict[str, SimulatedShard], rng: random.Random, join_steps: int = 2
) -> int:
    """Steps shards in random order; asserts after each step that no namespace has two owners
    (or is served where it is not owned while owned elsewhere). Returns the steps taken."""
    names = tuple(sorted(live))
    for steps in range(1, 500):
        live[rng.choice(names)].step(live, join_steps)
        for ns, owners in owners_of(live).items():
            assert len(owners) <= 1, f"{ns} owned by {owners}"
            serving = [s.name for s in live.values() if ns in s.serving and ns in s.owned]
            assert len(serving) <= 1, f"{ns} served by {serving}"
        settled = all(
            shard.owned == hashed_to(name, names) and shard.serving == shard.owned
            for name, shard in live.items()
        )
        if settled:
            return steps
    raise AssertionError("the shards did not settle")


@pytest.mark.parametrize("seed", range(25))
def test_three_shards_never_own_one_namespace_twice_through_a_kill_and_a_return(
    seed: int,
) -> None:
    rng = random.Random(seed)
    live = {name: SimulatedShard(name) for name in SHARDS}
    run_until_settled(live, rng)

    # s1 dies: its claims are void at once for the others (its fence closed before they judge
    # its Lease expired), and its namespaces go to their second choice.
    del live["s1"]
    run_until_settled(live, rng)
    assert set().union(*(s.owned for s in live.values())) == NAMESPACES

    # s1 comes back with nothing served and waits out its join period; the others let its
    # namespaces go, and it takes them.
    live["s1"] = SimulatedShard("s1")
    run_until_settled(live, rng)
    assert live["s1"].owned == hashed_to("s1")


@pytest.mark.parametrize("seed", range(10))
def test_a_fourth_shard_added_takes_only_its_share_and_nothing_is_owned_twice(seed: int) -> None:
    rng = random.Random(seed)
    live = {name: SimulatedShard(name) for name in SHARDS}
    run_until_settled(live, rng)
    before = {name: shard.owned for name, shard in live.items()}
    live["s3"] = SimulatedShard("s3")
    run_until_settled(live, rng)
    for name in SHARDS:
        assert live[name].owned <= before[name]  # nothing moves between the old shards
