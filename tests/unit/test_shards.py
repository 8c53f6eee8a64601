from __future__ import annotations

from collections import Counter

from spikeprof.core.shards import assignment, owner, weight


def test_the_weight_is_stable_across_processes() -> None:
    # A fixed value: every replica, whatever its Python hash seed, must agree.
    assert weight("spikeprof-0", "team-a") == weight("spikeprof-0", "team-a")
    assert weight("spikeprof-0", "team-a") != weight("spikeprof-1", "team-a")


def test_no_shard_no_owner() -> None:
    assert owner("team-a", []) is None
    assert assignment(["team-a"], []) == {}


def test_namespaces_spread_over_the_shards() -> None:
    namespaces = [f"ns-{i}" for i in range(3000)]
    counts = Counter(assignment(namespaces, ["s0", "s1", "s2"]).values())
    assert set(counts) == {"s0", "s1", "s2"}
    assert all(900 < n < 1100 for n in counts.values()), counts


def test_a_leaving_shard_moves_only_its_own_namespaces() -> None:
    namespaces = [f"ns-{i}" for i in range(300)]
    before = assignment(namespaces, ["s0", "s1", "s2"])
    after = assignment(namespaces, ["s0", "s2"])
    moved = {ns for ns in namespaces if before[ns] != after[ns]}
    assert moved == {ns for ns, shard in before.items() if shard == "s1"}


def test_a_joining_shard_takes_namespaces_only_for_itself() -> None:
    namespaces = [f"ns-{i}" for i in range(300)]
    before = assignment(namespaces, ["s0", "s1"])
    after = assignment(namespaces, ["s0", "s1", "s2"])
    assert all(after[ns] in (before[ns], "s2") for ns in namespaces)
    assert 60 < sum(after[ns] == "s2" for ns in namespaces) < 140
