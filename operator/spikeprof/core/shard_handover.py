"""How a namespace moves between shards without a gap and without two shards serving it at once.

Each shard publishes, in its own Lease, the namespaces it claims (annotation `CLAIMS_ANNOTATION`):
those it serves, and those it is about to serve. From the live shards' claims (a dead shard's
claims are void: its fence closed before its Lease could expire anywhere, see core.leases), the
namespaces that have sessions, and its own claims, a shard decides (`decide`):

- it claims a namespace when rendezvous hashing (core.shards) gives it to this shard and no other
  live shard claims it; it serves the namespace only once that claim is written to its Lease,
  so that every other shard can see it before anything is done there;
- it lets a namespace go when hashing gives it to another live shard: it stops acting there at
  once (the session stops at its next look), and drops the claim once nothing is served there
  any more; the new owner, which waited for that, claims it at its next look.

So a dead shard's namespaces move after one lease duration (when the others judge its Lease
expired) plus a retry period, and an added shard takes its namespaces a retry period or two
after the previous owners let go. A shard that joins the group, or comes back after its fence
closed (it was stopped, or cut off from the API server), claims nothing new for `JOIN_PERIODS`:
see `may_claim`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from spikeprof.core.shards import owner

CLAIMS_ANNOTATION = "spikeprof.io/serving"
"""In each shard's Lease: the namespaces it serves or is about to serve, comma-separated."""

GROUP_LABEL = "spikeprof.io/shard-group"
"""On each shard's Lease: the group (SPIKEPROF_SHARD_LEASE_PREFIX), which the shards list by."""


def parse_claims(text: str | None) -> frozenset[str]:
    """The namespaces a Lease's annotation names (none when it is missing or empty)."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def render_claims(namespaces: Iterable[str]) -> str:
    """Sorted, so that an unchanged set writes the same text."""
    return ",".join(sorted(set(namespaces)))


def may_claim(
    *,
    now: float,
    joined_at: float | None,
    listed_at: float | None,
    renew_deadline: float,
    retry: float,
) -> bool:
    """Whether a shard may add claims now (monotonic seconds throughout).

    Another shard B takes a namespace only from a list of the group that showed its owner dead,
    and acts on it only until that list's start plus the renew deadline (its fence counts from
    its view's age too). Had a shard A just (re)joined, B's list may predate A's return, and B's
    claim write may land after A's own list: A would see nobody claiming. Waiting the renew
    deadline plus a retry period after joining outlasts any action of such a B; a claim of B
    that lands later is seen by A and deferred to (and B lets it go, as hashing gives it to A).
    A claim is also decided only from a list at most one retry period old, which bounds B above.
    """
    if joined_at is None or listed_at is None:
        return False
    return now >= joined_at + renew_deadline + retry and now - listed_at <= retry


@dataclass(frozen=True)
class Handover:
    """What a shard does after one look at the group."""

    claims: frozenset[str]
    """What its Lease says next (written before any newly claimed namespace is served)."""
    owned: frozenset[str]
    """Where it may act once `claims` is written: claimed, hashed to it, claimed by no other."""
    taking: frozenset[str]
    """Newly claimed."""
    letting_go: frozenset[str]
    """Still served here, but hashed to another live shard: stop, then drop the claim."""


def decide(
    me: str,
    others: Mapping[str, frozenset[str]],
    *,
    wanted: frozenset[str],
    claimed: frozenset[str],
    serving: frozenset[str],
    claiming: bool,
) -> Handover:
    """One shard's decision.

    `others`: the other live shards and their claims (dead ones left out); `wanted`: the
    namespaces with sessions; `claimed`: this shard's claims as last written; `serving`: where
    sessions are being served here now; `claiming`: `may_claim`'s answer.
    """
    shards = {me, *others}
    claimed_elsewhere = frozenset().union(*others.values()) if others else frozenset()
    claims: set[str] = set()
    owned: set[str] = set()
    taking: set[str] = set()
    letting_go: set[str] = set()
    for namespace in sorted(wanted | claimed | serving):
        mine = owner(namespace, shards) == me
        if mine and namespace in wanted:
            if namespace in claimed:
                claims.add(namespace)
            elif claiming and namespace not in claimed_elsewhere:
                claims.add(namespace)
                taking.add(namespace)
            if namespace in claims and namespace not in claimed_elsewhere:
                owned.add(namespace)
        if namespace in serving:
            claims.add(namespace)  # published for as long as anything is served there
            if not mine:
                letting_go.add(namespace)
    return Handover(frozenset(claims), frozenset(owned), frozenset(taking), frozenset(letting_go))
