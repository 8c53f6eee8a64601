"""Top functions of a profile per sample type, as `go tool pprof -top` reports them.

For each function (pprof's default granularity, see frames.py): flat is the value of the samples
whose leaf frame is that function; cum is the value of the samples with the function anywhere in
their stack, each sample counted once however often the function recurs. Rows are ordered as
pprof orders them (flat, then name, then cum), the total is the sum of the samples' absolute
values, and the sample type shown first is the one pprof picks (Profile.sample_type_index).

Unlike a bare `go tool pprof -top`, nothing is trimmed: pprof hides functions whose cum is under
0.5% of the total (-nodefraction=0.005) and the flat of samples whose leaf it hid; the figures
here equal those of `go tool pprof -top -nodefraction=0`.

The sums are numpy's, over many samples' frames at once, and exact (sums.py).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikeprof.pprof import units
from spikeprof.pprof.frames import FrameTable, frame_table
from spikeprof.pprof.model import Profile, ValueType
from spikeprof.pprof.profile import decode_file

# numpy is imported in the functions that use it, not here: the operator imports this module
# at start, and should take numpy's ~17 MiB only once it analyses a profile.
if TYPE_CHECKING:
    from spikeprof.pprof.model import Int64Array

DEFAULT_TOP = 20
"""Rows per sample type in analyze_file's summary: the functions someone reads first, enough to
see where the time or memory went, small enough for metadata.json."""

EDGE_FRACTION = 0.001
"""pprof's default -edgefraction: call edges lighter than this share of the total are dropped
before functions are marked "(inline)"."""


@dataclass(frozen=True, slots=True)
class FunctionCost:
    """One row of the top: a function and its flat and cum values, in the sample type's unit."""

    function: str
    flat: int
    cum: int


@dataclass(frozen=True, slots=True)
class SampleTypeSummary:
    """Every function with a non-zero flat or cum value, in `go tool pprof -top` order."""

    sample_type: ValueType
    total: int
    functions: tuple[FunctionCost, ...]

    def percent(self, value: int) -> float:
        """A value as a percentage of the total, to two decimals (pprof's digits from 1% up)."""
        return round(abs(value) / self.total * 100, 2) if self.total else 0.0

    def to_json(self, top: int | None = DEFAULT_TOP) -> dict[str, Any]:
        rows = self.functions if top is None else self.functions[:top]
        return {
            "type": self.sample_type.type,
            "unit": self.sample_type.unit,
            "total": self.total,
            "functionCount": len(self.functions),
            "functions": [
                {
                    "function": row.function,
                    "flat": row.flat,
                    "flatPercent": self.percent(row.flat),
                    "cum": row.cum,
                    "cumPercent": self.percent(row.cum),
                }
                for row in rows
            ],
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """The top of every sample type of one profile."""

    sample_types: tuple[SampleTypeSummary, ...]
    default_index: int
    """Which of sample_types pprof shows when none is asked for."""

    @property
    def default(self) -> SampleTypeSummary:
        return self.sample_types[self.default_index]

    def to_json(self, top: int | None = DEFAULT_TOP) -> dict[str, Any]:
        """The summary as JSON-ready data: the first `top` rows of each sample type."""
        return {
            "defaultSampleType": self.default.sample_type.type,
            "sampleTypes": [summary.to_json(top) for summary in self.sample_types],
        }


def summarize(profile: Profile) -> Summary:
    """Flat, cum and total of every function for every sample type, in one pass over samples."""
    default_index = profile.sample_type_index()  # a profile without sample types is refused
    table = frame_table(profile)
    flat, cum, totals = _accumulate(profile, table)
    ranks = _name_ranks(table.names)
    summaries = []
    for index, sample_type in enumerate(profile.sample_types):
        order = _top_order(ranks, flat[index], cum[index])
        rows = zip(
            order.tolist(), flat[index][order].tolist(), cum[index][order].tolist(), strict=True
        )
        summaries.append(
            SampleTypeSummary(
                sample_type=sample_type,
                total=totals[index],
                functions=tuple(
                    FunctionCost(table.names[frame], flat_value, cum_value)
                    for frame, flat_value, cum_value in rows
                ),
            )
        )
    return Summary(tuple(summaries), default_index)


STACK_ENTRIES_PER_STEP = 1 << 18
"""Location entries of stacks aggregated together, at most (one sample may have more): enough
for numpy to run at full speed, few enough that its temporary arrays stay a few MiB each."""


def _accumulate(
    profile: Profile,
    table: FrameTable,
) -> tuple[Int64Array, Int64Array, list[int]]:
    # flat and cum, shape (sample types, frames), and the total of each sample type.
    import numpy as np

    from spikeprof.pprof import sums

    values = profile.sample_values
    frame_count = len(table.names)
    type_count = len(profile.sample_types)
    flat = np.zeros((type_count, frame_count), dtype=np.int64)
    cum = np.zeros((type_count, frame_count), dtype=np.int64)
    totals = [sums.sum_of_magnitudes(values[:, index]) for index in range(type_count)]
    steps = np.searchsorted(
        profile.stack_offsets,
        np.arange(0, len(profile.stack_locations), STACK_ENTRIES_PER_STEP),
        side="right",
    )
    bounds = sorted({0, profile.sample_count, *(steps - 1).tolist()})
    for first, stop in itertools.pairwise(bounds):
        frames, offsets = table.stack_frames(profile, first, stop)
        has_stack = offsets[:-1] < offsets[1:]  # samples without one count in the total only
        leaves = frames[offsets[:-1][has_stack]]
        # Each function once per sample, however often it recurs there: (sample, frame)
        # pairs, sorted and deduplicated.
        owners = np.repeat(np.arange(stop - first, dtype=np.int64), np.diff(offsets))
        pairs = np.sort(owners * frame_count + frames)
        del owners, frames
        distinct = np.ones(len(pairs), dtype=np.bool_)
        np.not_equal(pairs[1:], pairs[:-1], out=distinct[1:])
        in_stack_owner, in_stack_frame = np.divmod(pairs[distinct], frame_count)
        del pairs, distinct
        step_values = values[first:stop]
        for index in range(type_count):
            column = step_values[:, index]
            flat[index] += sums.weighted_counts(leaves, column[has_stack], frame_count)
            cum[index] += sums.weighted_counts(in_stack_frame, column[in_stack_owner], frame_count)
    return flat, cum, totals


def _name_ranks(names: tuple[str, ...]) -> Int64Array:
    # Each frame's name's place in name order; frames of the same name (nameless frames of one
    # binary) share it.
    import numpy as np

    place = {name: rank for rank, name in enumerate(sorted(set(names)))}
    return np.fromiter((place[name] for name in names), dtype=np.int64, count=len(names))


def _top_order(ranks: Int64Array, flat: Int64Array, cum: Int64Array) -> Int64Array:
    # pprof's FlatNameOrder: |flat| down, name up, |cum| down; functions with neither are left out.
    import numpy as np

    frames = np.flatnonzero((flat != 0) | (cum != 0))
    order = np.lexsort((frames, -np.abs(cum[frames]), ranks[frames], -np.abs(flat[frames])))
    result: Int64Array = frames[order]
    return result


def analyze_file(path: Path | str, *, top: int | None = DEFAULT_TOP) -> dict[str, Any]:
    """The JSON-ready summary of a profile file, for metadata.json (ProfileDecodeError if bad)."""
    return summarize(decode_file(path)).to_json(top)


def render_top(
    profile: Profile,
    *,
    sample_type: str | None = None,
    unit: str = "minimum",
    top: int | None = None,
) -> str:
    """The report `go tool pprof -top -nodefraction=0 [-nodecount=top] [-unit=unit]` prints.

    Header lines, then one line per function: flat, flat%, sum%, cum, cum%, name, and pprof's
    "(inline)" / "(partial-inline)" marks for functions that were (sometimes) inlined.
    """
    index = profile.sample_type_index(sample_type)
    value_type = profile.sample_types[index]
    table = frame_table(profile)
    all_flat, all_cum, totals = _accumulate(profile, table)
    ordered = _top_order(_name_ranks(table.names), all_flat[index], all_cum[index]).tolist()
    flat, cum, total = all_flat[index].tolist(), all_cum[index].tolist(), totals[index]
    shown = ordered if top is None else ordered[:top]
    sample_unit = value_type.unit.lower()
    if unit == "minimum":
        smallest = min((abs(flat[frame]) or abs(cum[frame]) for frame in shown), default=0)
        unit = units.output_unit(sample_unit, smallest, total)

    def figure(value: int) -> str:
        return units.scaled_label(value, sample_unit, unit)

    lines = _profile_labels(profile, value_type, total, figure)
    shown_flat = sum(flat[frame] for frame in shown)
    lines.append(
        f"Showing nodes accounting for {figure(shown_flat)}, "
        f"{units.percentage(shown_flat, total).strip()} of {figure(total)} total"
    )
    if total and 0 < len(shown) < len(ordered):
        lines.append(f"Showing top {len(shown)} nodes out of {len(ordered)}")
    lines.append(f"{'flat':>10s} {'flat':>5s}% {'sum':>5s}% {'cum':>10s} {'cum':>5s}%")
    # pprof drops call edges under -edgefraction (0.001) of the summed flat values before it
    # marks inlined functions, so rarely-inlined functions lose their mark; so do we.
    edge_cutoff = abs(int(sum(flat) * EDGE_FRACTION))
    marks = _inline_marks(profile, table, index, set(shown), edge_cutoff)
    running = 0
    for frame in shown:
        running += flat[frame]
        lines.append(
            f"{figure(flat[frame]):>10s} {units.percentage(flat[frame], total)} "
            f"{units.percentage(running, total)} {figure(cum[frame]):>10s} "
            f"{units.percentage(cum[frame], total)}  {table.names[frame]}{marks.get(frame, '')}"
        )
    return "\n".join(lines) + "\n"


def _profile_labels(
    profile: Profile,
    value_type: ValueType,
    total: int,
    figure: Callable[[int], str],
) -> list[str]:
    # pprof's ProfileLabels: the lines above the table.
    lines: list[str] = []
    mapping = profile.main_mapping
    if mapping is not None:
        if mapping.filename:
            lines.append(f"File: {mapping.filename.rstrip('/').rsplit('/', 1)[-1]}")
        if mapping.build_id:
            lines.append(f"Build ID: {mapping.build_id}")
    lines.extend(comment for comment in profile.comments if not comment.startswith("#"))
    lines.append(f"Type: {value_type.type}")
    if profile.doc_url:
        lines.append(f"Doc: {profile.doc_url}")
    if profile.time_nanos:
        taken = datetime.datetime.fromtimestamp(profile.time_nanos // 10**9).astimezone()
        lines.append(f"Time: {taken.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    if profile.duration_nanos:
        ratio = ""
        total_nanos, total_unit = units.scale(total, value_type.unit.lower(), "nanoseconds")
        if total_unit == "ns" and total_nanos:
            ratio = f"({units.percentage(int(total_nanos), profile.duration_nanos)})"
        lines.append(
            f"Duration: {units.scaled_label(profile.duration_nanos, 'nanoseconds')}, "
            f"Total samples = {figure(total)} {ratio}"
        )
    return lines


def _inline_marks(
    profile: Profile,
    table: FrameTable,
    index: int,
    shown: set[int],
    edge_cutoff: int,
) -> dict[int, str]:
    # pprof marks a function "(inline)" when every call edge into it stays inside one location
    # (it was inlined into its caller), "(partial-inline)" when only some do. It builds edges
    # between shown functions only (an edge may skip hidden ones), counts an edge once per
    # sample, with the inline flag of that first occurrence ANDed over samples, and drops edges
    # lighter than edge_cutoff. This is the same walk over each stack, root to leaf.
    by_index = [table.by_location[location] for location in profile.location_order]
    stacks = profile.stack_locations.tolist()
    offsets = profile.stack_offsets.tolist()
    weights: dict[tuple[int, int], int] = {}
    inline_by_edge: dict[tuple[int, int], bool] = {}
    for sample, value in enumerate(profile.sample_values[:, index].tolist()):
        if not value:
            continue
        seen: set[tuple[int, int]] = set()
        caller = -1  # no frame yet: the root has no caller
        for location in reversed(stacks[offsets[sample] : offsets[sample + 1]]):
            frames = by_index[location]
            outermost = len(frames) - 1
            for position in range(outermost, -1, -1):
                frame = frames[position]
                if frame not in shown:
                    continue
                edge = (caller, frame)
                if caller >= 0 and frame != caller and edge not in seen:
                    seen.add(edge)
                    weights[edge] = weights.get(edge, 0) + value
                    inline = position != outermost
                    inline_by_edge[edge] = inline_by_edge.get(edge, True) and inline
                caller = frame
    kinds: dict[int, set[bool]] = {}
    for edge, inline in inline_by_edge.items():
        if abs(weights[edge]) >= edge_cutoff:
            kinds.setdefault(edge[1], set()).add(inline)
    return {
        frame: " (partial-inline)" if False in edge_kinds else " (inline)"
        for frame, edge_kinds in kinds.items()
        if True in edge_kinds
    }
