"""Listings of the captures, kept for a few seconds, so that clicking through the UI does not
list the store again on every page.

Listing an object store reads every capture's metadata.json (adapters/artifact_reader.py): a
few hundred captures take a second or more. A person moving from the captures to one capture
to its diff within seconds sees the same listing; a capture written meanwhile shows up at most
LISTING_MAX_AGE later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from spikeprof.adapters.artifact_reader import ArtifactSource, Listing

LISTING_MAX_AGE = 10.0
"""Seconds a listing is reused."""
MAX_LISTINGS = 256
"""Listings kept at most (one per path prefix asked for), so that URLs naming many prefixes
cannot grow the memory without bound."""


def _narrow(listing: Listing, prefix: tuple[str, ...]) -> Listing:
    return Listing(
        captures=[c for c in listing.captures if c.key.parts[: len(prefix)] == prefix],
        problems=list(listing.problems),
    )


class RecentListings:
    """A source's listings by path prefix, each reused for max_age seconds."""

    def __init__(
        self,
        source: ArtifactSource,
        *,
        max_age: float = LISTING_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.max_age = max_age
        self.clock = clock
        self._kept: dict[tuple[str, ...], tuple[float, Listing]] = {}
        # One listing at a time: a burst of requests (a page and its flame graph frame) lists
        # once, and the store sees one reader's worth of requests.
        self._lock = asyncio.Lock()

    def _fresh(self, prefix: tuple[str, ...]) -> Listing | None:
        now = self.clock()
        # A fresh listing of everything also answers for any narrower prefix.
        for key in ((), prefix):
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < self.max_age:
                return _narrow(kept[1], prefix)
        return None

    async def get(self, prefix: tuple[str, ...] = ()) -> Listing:
        if (fresh := self._fresh(prefix)) is not None:
            return fresh
        async with self._lock:
            if (fresh := self._fresh(prefix)) is not None:
                return fresh
            listing = await self.source.list_captures(prefix)
            now = self.clock()
            self._kept = {
                key: kept for key, kept in self._kept.items() if now - kept[0] < self.max_age
            }
            if len(self._kept) >= MAX_LISTINGS:
                self._kept.clear()
            self._kept[prefix] = (now, listing)
            return _narrow(listing, prefix)
