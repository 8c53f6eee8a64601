"""A leak pair: two heap profiles of one process taken some seconds apart, and what grew between.

The question a pair answers is "which allocation sites hold more memory now than a moment ago?",
so this differs from the baseline diff (diff.py's defaults) in two ways:
- figures are absolute bytes, not shares: both profiles come from the same process a few seconds
  apart, and a leak is bytes that stay, not a shift in the profile's shape;
- sites are ranked by flat in-use bytes (the function that made the allocation, as
  `go tool pprof -top -sample_index=inuse_space -diff_base first second` ranks them), not by
  cum: every caller up to `runtime.goexit` grows by as much as the site, and would crowd it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spikeprof.pprof.diff import diff_profiles
from spikeprof.pprof.profile import Profile

GROWTH_SAMPLE_TYPE = "inuse_space"
"""The heap profile's live bytes per allocation site; what a leak adds to."""

DEFAULT_TOP = 10


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """One allocation site: its in-use bytes in each profile (flat), and its cum growth."""

    function: str
    before: int
    after: int
    cum_growth: int

    @property
    def growth(self) -> int:
        return self.after - self.before


@dataclass(frozen=True, slots=True)
class HeapGrowth:
    """What grew between the first and the second heap profile of a pair."""

    unit: str
    before: int
    """In-use bytes of the whole first profile."""
    after: int
    """In-use bytes of the whole second profile."""
    seconds: float | None
    """Between the two profiles' own time stamps; None when either lacks one."""
    sites: tuple[SiteGrowth, ...]
    """Every site whose in-use bytes grew, largest growth first."""

    @property
    def growth(self) -> int:
        return self.after - self.before

    def to_json(self, top: int = DEFAULT_TOP) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sampleType": GROWTH_SAMPLE_TYPE,
            "unit": self.unit,
            "before": self.before,
            "after": self.after,
            "growth": self.growth,
            "grownSites": len(self.sites),
            "top": [
                {
                    "function": site.function,
                    "before": site.before,
                    "after": site.after,
                    "growth": site.growth,
                    "cumGrowth": site.cum_growth,
                }
                for site in self.sites[:top]
            ],
        }
        if self.seconds is not None:
            out["measuredSeconds"] = round(self.seconds, 3)
            if self.seconds > 0:
                out["growthPerSecond"] = round(self.growth / self.seconds)
        return out


def heap_growth(first: Profile, second: Profile) -> HeapGrowth:
    """The sites whose in-use bytes grew from first to second, largest first.

    Raises ProfileMismatchError when either profile has no inuse_space (not a heap profile).
    """
    diff = diff_profiles(
        first, second, sample_type=GROWTH_SAMPLE_TYPE, normalize=False, rank_by="flat"
    )
    sites = tuple(
        SiteGrowth(row.function, row.base_flat, row.spike_flat, row.cum_delta)
        for row in diff.functions
        if row.flat_delta > 0
    )
    seconds = None
    if first.time_nanos and second.time_nanos:
        seconds = (second.time_nanos - first.time_nanos) / 1e9
    return HeapGrowth(
        unit=diff.sample_type.unit,
        before=diff.base_total,
        after=diff.spike_total,
        seconds=seconds,
        sites=sites,
    )
