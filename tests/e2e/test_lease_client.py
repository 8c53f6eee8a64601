"""adapters.leases against the real API server: what leader election and shards rely on."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from localcluster.controlplane import ControlPlane

from spikeprof.adapters import kube
from spikeprof.adapters.leases import LeaseClient, LeaseConflictError
from spikeprof.core.leases import acquired

pytestmark = pytest.mark.e2e

WALL = datetime.datetime(2026, 12, 2, 2, 0, 0, 123456, tzinfo=datetime.UTC)


@pytest.fixture
def run(cluster: ControlPlane) -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    api_client = loop.run_until_complete(kube.connect(str(cluster.kubeconfig)))
    yield lambda make: loop.run_until_complete(make(api_client))
    loop.run_until_complete(api_client.close())
    loop.close()


def test_a_lease_is_created_read_renewed_and_released_with_its_times_kept(
    run: Any, namespace: str
) -> None:
    async def scenario(api_client: Any) -> None:
        leases = LeaseClient(api_client, namespace)
        assert await leases.read("spikeprof") is None
        mine = acquired(None, name="spikeprof", identity="a", duration_seconds=15, wall_now=WALL)
        mine = dataclasses.replace(mine, annotations={"spikeprof.io/namespaces": "shop"})
        created = await leases.create(mine)
        read = await leases.read("spikeprof")
        assert read == created
        assert (read.holder, read.duration_seconds, read.renew_time, read.transitions) == (
            "a",
            15,
            WALL,  # MicroTime keeps the microseconds
            0,
        )
        assert read.annotations == {"spikeprof.io/namespaces": "shop"}
        later = WALL + datetime.timedelta(seconds=2)
        renewed = await leases.update(
            acquired(read, name="spikeprof", identity="a", duration_seconds=15, wall_now=later)
        )
        assert renewed.renew_time == later and renewed.resource_version != read.resource_version
        freed = await leases.release(renewed)
        assert (freed.holder, freed.held, freed.duration_seconds) == (None, False, 1)

    run(scenario)


def test_two_candidates_writing_the_same_version_cannot_both_win(run: Any, namespace: str) -> None:
    async def scenario(api_client: Any) -> None:
        leases = LeaseClient(api_client, namespace)
        first = acquired(None, name="one", identity="a", duration_seconds=15, wall_now=WALL)
        with pytest.raises(LeaseConflictError):
            await asyncio.gather(leases.create(first), leases.create(first))
        seen = await leases.read("one")
        assert seen is not None
        by_b = acquired(seen, name="one", identity="b", duration_seconds=15, wall_now=WALL)
        by_c = acquired(seen, name="one", identity="c", duration_seconds=15, wall_now=WALL)
        await leases.update(by_b)
        with pytest.raises(LeaseConflictError):
            await leases.update(by_c)
        final = await leases.read("one")
        assert final is not None and (final.holder, final.transitions) == ("b", 1)

    run(scenario)


def test_leases_are_listed_by_label(run: Any, namespace: str) -> None:
    async def scenario(api_client: Any) -> None:
        leases = LeaseClient(api_client, namespace)
        for name, group in (("g-a", "g"), ("g-b", "g"), ("other", "h")):
            lease = acquired(None, name=name, identity=name, duration_seconds=15, wall_now=WALL)
            await leases.create(
                dataclasses.replace(lease, labels={"spikeprof.io/shard-group": group})
            )
        found = await leases.list_selected("spikeprof.io/shard-group=g")
        assert sorted(lease.name for lease in found) == ["g-a", "g-b"]

    run(scenario)
