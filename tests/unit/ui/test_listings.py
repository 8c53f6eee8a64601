"""RecentListings lists a source once per max_age, answers narrower prefixes from a listing of
everything, and keeps a bounded number of listings."""

from __future__ import annotations

import datetime
from pathlib import Path

from spikeprof.adapters.artifact_reader import Listing
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.catalog import Capture
from spikeprof.ui import listings
from spikeprof.ui.listings import RecentListings


def _capture(*parts: str) -> Capture:
    return Capture(
        key=ArtifactKey(*parts),
        time=datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC),
        trigger="immediate",
        reason="",
        node="",
        finished_at="",
        profiles=(),
        files={"metadata.json": 2},
        metadata={},
    )


class CountingSource:
    """An ArtifactSource holding two captures in memory, counting its listings."""

    description = "memory"

    def __init__(self) -> None:
        self.listed: list[tuple[str, ...]] = []
        self.captures = [_capture("a", "s", "p", "1"), _capture("b", "s", "p", "2")]

    async def list_captures(self, prefix: tuple[str, ...] = ()) -> Listing:
        self.listed.append(prefix)
        return Listing([c for c in self.captures if c.key.parts[: len(prefix)] == prefix])

    async def fetch(self, capture: Capture, name: str, dest: Path, progress: object) -> int:
        raise AssertionError("not fetched here")


async def test_a_listing_is_reused_until_it_is_max_age_old() -> None:
    source, now = CountingSource(), [0.0]
    recent = RecentListings(source, max_age=10, clock=lambda: now[0])
    assert len((await recent.get()).captures) == 2
    now[0] = 9.9
    assert [c.key.namespace for c in (await recent.get(("b",))).captures] == ["b"]
    assert source.listed == [()]  # the narrower prefix came from the listing of everything
    now[0] = 10.0
    await recent.get()
    assert source.listed == [(), ()]


async def test_listings_kept_are_bounded() -> None:
    source = CountingSource()
    recent = RecentListings(source, max_age=60, clock=lambda: 0.0)
    for n in range(listings.MAX_LISTINGS + 5):
        await recent.get(("nowhere", str(n)))
    assert len(recent._kept) <= listings.MAX_LISTINGS
