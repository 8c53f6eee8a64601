"""How this replica shares the work with the others, as its settings say: the Ownership.

One replica (no Lease settings) owns every namespace. SPIKEPROF_LEADER_ELECTION_LEASE makes it
a candidate in active/standby (services.leadership); SPIKEPROF_SHARD_LEASE_PREFIX one shard of a
group (services.shards). Whatever the mode, the Ownership is started
before any session is served and before the alert receiver answers, and stopped at clean-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from spikeprof.adapters.leases import LeaseClient
from spikeprof.services.leadership import LeaderElection
from spikeprof.services.ownership import EveryNamespace, Ownership
from spikeprof.services.shards import ShardMembership
from spikeprof.settings import Settings

Stop = Callable[[], Awaitable[None]]


async def _nothing_to_stop() -> None:
    return None


async def start_ownership(settings: Settings, api_client: Any) -> tuple[Ownership, Stop]:
    """The started Ownership, and what stops it (releasing any Lease it holds)."""
    if settings.leader_election_lease and settings.lease_namespace:
        election = LeaderElection(
            LeaseClient(api_client, settings.lease_namespace),
            name=settings.leader_election_lease,
            identity=settings.replica_identity(),
            lease_seconds=settings.lease_seconds,
            renew_deadline_seconds=settings.renew_deadline_seconds,
            retry_seconds=settings.lease_retry_seconds,
        )
        await election.start()
        return election, election.close
    if settings.shard_lease_prefix and settings.lease_namespace:
        shard = ShardMembership(
            LeaseClient(api_client, settings.lease_namespace),
            prefix=settings.shard_lease_prefix,
            identity=settings.replica_identity(),
            lease_seconds=settings.lease_seconds,
            renew_deadline_seconds=settings.renew_deadline_seconds,
            retry_seconds=settings.lease_retry_seconds,
        )
        await shard.start()
        return shard, shard.close
    return EveryNamespace(), _nothing_to_stop
