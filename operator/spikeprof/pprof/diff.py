"""Two profiles of the same kind compared function by function, and as a differential flame graph.

The base is the calm profile, the spike the one taken when things went wrong; every delta is
spike minus base. Functions are named as in summaries and flame graphs (frames.py), and flat and
cum are counted as `go tool pprof -top` counts them (summary.py).

Deltas are normalised by default: each figure is taken as a share of its own profile's total
before subtracting. A 30 s and a 10 s CPU profile, or a heap profile of a busy and of an idle
pod, differ in total far more than in shape; absolute deltas would rank every function of the
larger profile as a "gainer". A share answers the question asked of a spike, "where did the
time (or memory) go instead?". Absolute figures are kept beside the shares, and
`normalize=False` ranks by them (for two profiles of the same duration and load).

Functions are ranked by the change of their cum by default, not of their flat: a spike is new
work on some code path, and cum points at the code that owns it (`main.burnCPU`), while flat
points at the leaf it ends in, often a library function every caller shares (`sha256.block`).
With shares, a root that is on every stack (`runtime.goexit`) changes by nothing and stays out
of the way. `rank_by="flat"` ranks as `go tool pprof -top -diff_base` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from spikeprof.errors import SpikeprofError
from spikeprof.pprof import units
from spikeprof.pprof.flamegraph import MAX_FRAMES, MIN_FRAME_FRACTION, ROOT_NAME
from spikeprof.pprof.frames import frame_table
from spikeprof.pprof.profile import Profile, ValueType
from spikeprof.pprof.summary import SampleTypeSummary, summarize

RankBy = Literal["cum", "flat"]

DEFAULT_TOP = 10
"""Gainers and losers shown: the handful of functions that explain a spike."""


class ProfileMismatchError(SpikeprofError, ValueError):
    """The two profiles do not measure the same thing, so their difference means nothing."""


@dataclass(frozen=True, slots=True)
class FunctionDelta:
    """One function in both profiles: values in the sample type's unit, shares in [0, 1]."""

    function: str
    base_flat: int
    base_cum: int
    spike_flat: int
    spike_cum: int
    base_flat_share: float
    base_cum_share: float
    spike_flat_share: float
    spike_cum_share: float

    @property
    def flat_delta(self) -> int:
        return self.spike_flat - self.base_flat

    @property
    def cum_delta(self) -> int:
        return self.spike_cum - self.base_cum

    @property
    def flat_share_delta(self) -> float:
        return self.spike_flat_share - self.base_flat_share

    @property
    def cum_share_delta(self) -> float:
        return self.spike_cum_share - self.base_cum_share


@dataclass(frozen=True, slots=True)
class ProfileDiff:
    """Every function of either profile, sorted by gain (largest rise first)."""

    sample_type: ValueType
    base_total: int
    spike_total: int
    normalized: bool
    """Whether gain is ranked by share of each total (True) or by absolute value."""
    rank_by: RankBy
    """Whether gain is the change of cum (the default) or of flat."""
    functions: tuple[FunctionDelta, ...]

    def gain(self, row: FunctionDelta) -> float:
        """The figure rows are ranked by: the cum (or flat) delta, as a share or absolute."""
        return _gain(row, normalized=self.normalized, rank_by=self.rank_by)

    def gainers(self, top: int = DEFAULT_TOP) -> tuple[FunctionDelta, ...]:
        """The functions that grew most, largest gain first."""
        return tuple(row for row in self.functions if self.gain(row) > 0)[:top]

    def losers(self, top: int = DEFAULT_TOP) -> tuple[FunctionDelta, ...]:
        """The functions that shrank most, largest loss first."""
        return tuple(row for row in reversed(self.functions) if self.gain(row) < 0)[:top]

    def to_json(self, top: int | None = DEFAULT_TOP) -> dict[str, Any]:
        limit = len(self.functions) if top is None else top
        return {
            "type": self.sample_type.type,
            "unit": self.sample_type.unit,
            "normalized": self.normalized,
            "rankBy": self.rank_by,
            "baseTotal": self.base_total,
            "spikeTotal": self.spike_total,
            "functionCount": len(self.functions),
            "gainers": [_row_json(row) for row in self.gainers(limit)],
            "losers": [_row_json(row) for row in self.losers(limit)],
        }


def _gain(row: FunctionDelta, *, normalized: bool, rank_by: RankBy) -> float:
    if rank_by == "cum":
        return row.cum_share_delta if normalized else float(row.cum_delta)
    return row.flat_share_delta if normalized else float(row.flat_delta)


def _percent(share: float) -> float:
    return round(share * 100, 2)


def _row_json(row: FunctionDelta) -> dict[str, Any]:
    return {
        "function": row.function,
        "base": {
            "flat": row.base_flat,
            "flatPercent": _percent(row.base_flat_share),
            "cum": row.base_cum,
            "cumPercent": _percent(row.base_cum_share),
        },
        "spike": {
            "flat": row.spike_flat,
            "flatPercent": _percent(row.spike_flat_share),
            "cum": row.spike_cum,
            "cumPercent": _percent(row.spike_cum_share),
        },
        "delta": {
            "flat": row.flat_delta,
            "flatPercentPoints": _percent(row.flat_share_delta),
            "cum": row.cum_delta,
            "cumPercentPoints": _percent(row.cum_share_delta),
        },
    }


def common_sample_type(base: Profile, spike: Profile, sample_type: str | None = None) -> int:
    """Index (in base) of the sample type both profiles have; ProfileMismatchError if none.

    With no name, the base's default (pprof's choice). The spike must have a sample type of the
    same name and unit: a CPU profile against a heap profile is refused, not compared.
    """
    try:
        index = base.sample_type_index(sample_type)
    except ValueError as error:
        raise ProfileMismatchError(f"the base profile: {error}") from None
    wanted = base.sample_types[index]
    for other in spike.sample_types:
        if other.type == wanted.type:
            if other.unit != wanted.unit:
                raise ProfileMismatchError(
                    f"the base profile measures {wanted.type} in {wanted.unit} and the spike "
                    f"profile in {other.unit}: they cannot be compared"
                )
            return index
    raise ProfileMismatchError(
        f"the base profile measures {wanted.type} ({wanted.unit}) and the spike profile does "
        f"not (it has {', '.join(t.type for t in spike.sample_types) or 'no sample types'}): "
        "compare two profiles of the same type"
    )


def _summary_of(profile: Profile, type_name: str) -> SampleTypeSummary:
    summary = summarize(profile)
    return next(s for s in summary.sample_types if s.sample_type.type == type_name)


def diff_profiles(
    base: Profile,
    spike: Profile,
    *,
    sample_type: str | None = None,
    normalize: bool = True,
    rank_by: RankBy = "cum",
) -> ProfileDiff:
    """Flat and cum of every function in base and spike, and their change, sorted by gain."""
    index = common_sample_type(base, spike, sample_type)
    value_type = base.sample_types[index]
    base_summary = _summary_of(base, value_type.type)
    spike_summary = _summary_of(spike, value_type.type)
    base_rows = {row.function: row for row in base_summary.functions}
    spike_rows = {row.function: row for row in spike_summary.functions}

    def share(value: int, total: int) -> float:
        return value / total if total else 0.0

    rows: list[FunctionDelta] = []
    for name in base_rows.keys() | spike_rows.keys():
        in_base = base_rows.get(name)
        in_spike = spike_rows.get(name)
        base_flat, base_cum = (in_base.flat, in_base.cum) if in_base else (0, 0)
        spike_flat, spike_cum = (in_spike.flat, in_spike.cum) if in_spike else (0, 0)
        rows.append(
            FunctionDelta(
                function=name,
                base_flat=base_flat,
                base_cum=base_cum,
                spike_flat=spike_flat,
                spike_cum=spike_cum,
                base_flat_share=share(base_flat, base_summary.total),
                base_cum_share=share(base_cum, base_summary.total),
                spike_flat_share=share(spike_flat, spike_summary.total),
                spike_cum_share=share(spike_cum, spike_summary.total),
            )
        )
    other: RankBy = "flat" if rank_by == "cum" else "cum"
    rows.sort(
        key=lambda r: (
            -_gain(r, normalized=normalize, rank_by=rank_by),
            -_gain(r, normalized=normalize, rank_by=other),
            r.function,
        )
    )
    return ProfileDiff(
        sample_type=value_type,
        base_total=base_summary.total,
        spike_total=spike_summary.total,
        normalized=normalize,
        rank_by=rank_by,
        functions=tuple(rows),
    )


def render_diff(diff: ProfileDiff, *, top: int = DEFAULT_TOP) -> str:
    """Top gainers and losers as a text table, figures in pprof's units."""
    unit = diff.sample_type.unit.lower()

    def figure(value: int) -> str:
        return units.scaled_label(value, unit)

    def signed(value: int) -> str:
        return ("+" if value > 0 else "") + figure(value)

    def points(share: float) -> str:
        return f"{share * 100:+.2f}pp"

    lines = [
        f"Type: {diff.sample_type.type}",
        f"Base total: {figure(diff.base_total)}, spike total: {figure(diff.spike_total)}",
        f"Ranked by change in {diff.rank_by} "
        + ("share of each profile's total (pp: percentage points)" if diff.normalized else "value"),
    ]
    header = (
        f"{'flat Δ%':>9s} {'base flat':>10s} {'spike flat':>10s} {'flat Δ':>10s} "
        f"{'cum Δ%':>9s} {'cum Δ':>10s}  function"
    )
    for title, rows in (("Top gainers", diff.gainers(top)), ("Top losers", diff.losers(top))):
        lines.append("")
        lines.append(f"{title}:")
        if not rows:
            lines.append("  (none)")
            continue
        lines.append(header)
        for row in rows:
            lines.append(
                f"{points(row.flat_share_delta):>9s} {row.base_flat_share * 100:9.2f}% "
                f"{row.spike_flat_share * 100:9.2f}% {signed(row.flat_delta):>10s} "
                f"{points(row.cum_share_delta):>9s} {signed(row.cum_delta):>10s}  {row.function}"
            )
    return "\n".join(lines) + "\n"


# The differential flame graph.


@dataclass(slots=True)
class _Node:
    name: str
    depth: int
    spike: int = 0
    base: int = 0
    spike_self: int = 0
    base_self: int = 0
    children: dict[str, _Node] | None = None

    def child(self, name: str) -> _Node:
        if self.children is None:
            self.children = {}
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = _Node(name, self.depth + 1)
        return node


def _stacks(profile: Profile, index: int) -> list[tuple[tuple[str, ...], int]]:
    # Each sample's frames by name, root first, with its (positive) value of the sample type.
    import numpy as np  # here, not at the top: see summary.py

    table = frame_table(profile)
    frames, offsets = table.stack_frames(profile)
    names = [table.names[frame] for frame in frames[::-1].tolist()]  # every stack, root first
    drawn = np.flatnonzero(profile.sample_values[:, index] > 0)
    ends = (len(names) - offsets[drawn]).tolist()
    starts = (len(names) - offsets[drawn + 1]).tolist()
    values = profile.sample_values[drawn, index].tolist()
    return [
        (tuple(names[start:end]), value)
        for start, end, value in zip(starts, ends, values, strict=True)
    ]


def _merge(root: _Node, stacks: list[tuple[tuple[str, ...], int]], *, spike: bool) -> None:
    for path, value in stacks:
        node = root
        if spike:
            node.spike += value
        else:
            node.base += value
        for name in path:
            node = node.child(name)
            if spike:
                node.spike += value
            else:
                node.base += value
        if spike:
            node.spike_self += value
        else:
            node.base_self += value


@dataclass(frozen=True, slots=True)
class DiffFlameGraph:
    """The spike's merged stacks, each frame with its value on the same path in the base."""

    sample_type: ValueType
    spike_total: int
    base_total: int
    names: tuple[str, ...]
    frames: tuple[tuple[int, int, int, int, int, int], ...]
    """(name index, depth, spike value, base value, spike self, base self) per frame, depth
    first, siblings by name; frame 0 is the root, "all"."""
    dropped_frames: int
    base_only_share: float
    """Share of the base total on paths the spike does not have: not drawn, since width is
    the spike's."""


def build_diff_flamegraph(
    base: Profile,
    spike: Profile,
    *,
    sample_type: str | None = None,
    min_fraction: float = MIN_FRAME_FRACTION,
    max_frames: int = MAX_FRAMES,
) -> DiffFlameGraph:
    """Merge both profiles' stacks by path; keep the spike's frames wider than min_fraction."""
    index = common_sample_type(base, spike, sample_type)
    value_type = base.sample_types[index]
    spike_index = next(i for i, t in enumerate(spike.sample_types) if t.type == value_type.type)
    root = _Node(ROOT_NAME, 0)
    _merge(root, _stacks(spike, spike_index), spike=True)
    _merge(root, _stacks(base, index), spike=False)
    threshold = max(1.0, root.spike * min_fraction)

    names: list[str] = [ROOT_NAME]
    name_index: dict[str, int] = {ROOT_NAME: 0}
    frames: list[tuple[int, int, int, int, int, int]] = []
    dropped = 0
    base_only = 0
    pending = [root]
    while pending:
        node = pending.pop()
        if len(frames) >= max_frames:
            dropped += 1
            continue
        position = name_index.get(node.name)
        if position is None:
            position = name_index[node.name] = len(names)
            names.append(node.name)
        frames.append(
            (position, node.depth, node.spike, node.base, node.spike_self, node.base_self)
        )
        below = []
        for child in (node.children or {}).values():
            if not child.spike:
                base_only += child.base
            elif child.spike >= threshold:
                below.append(child)
            else:
                dropped += 1
        below.sort(key=lambda child: child.name, reverse=True)  # popped in name order
        pending.extend(below)
    return DiffFlameGraph(
        sample_type=value_type,
        spike_total=root.spike,
        base_total=root.base,
        names=tuple(names),
        frames=tuple(frames),
        dropped_frames=dropped,
        base_only_share=base_only / root.base if root.base else 0.0,
    )
