"""Which shard serves a namespace: rendezvous (highest random weight) hashing.

Every shard computes the same answer from the same set of live shards, with no coordinator:
each (shard, namespace) pair gets a weight from a hash, and the namespace goes to the shard
with the highest. When a shard leaves, only its namespaces move (each to its second choice);
when one joins, it takes about 1/N of the namespaces from the others, and nothing else moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(shard: str, namespace: str) -> int:
    """A stable 64-bit weight (the same in every process and Python version: not `hash()`)."""
    digest = hashlib.blake2b(f"{shard}\0{namespace}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(namespace: str, shards: Iterable[str]) -> str | None:
    """The shard that serves `namespace` among `shards` (None when there is none)."""
    best: tuple[int, str] | None = None
    for shard in shards:
        candidate = (weight(shard, namespace), shard)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def assignment(namespaces: Iterable[str], shards: Iterable[str]) -> dict[str, str]:
    """namespace -> shard, for every namespace (empty when there are no shards)."""
    live = sorted(set(shards))
    if not live:
        return {}
    return {ns: owner(ns, live) or live[0] for ns in namespaces}
