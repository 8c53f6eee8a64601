"""Flame graphs: identical stacks of a profile merged into a tree of frames (page: flamegraph_page).

Frames are the functions of `go tool pprof`'s default granularity (frames.py), so a flame graph
and a summary of the same profile name and count the same things: a frame's width is the cum
value of that function along that one path from the root. Siblings are in name order, so two
flame graphs of the same program line up.

A large profile has far more distinct frames than a screen has pixels: frames narrower than
MIN_FRAME_FRACTION of the total are cut (with a note on the page saying how many), and at most
MAX_FRAMES are kept, so the file stays a couple of MB at worst.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter

import numpy as np

from spikeprof.pprof.frames import frame_table
from spikeprof.pprof.model import Profile, ValueType

MIN_FRAME_FRACTION = 0.0005
"""Frames narrower than this share of the total are not drawn: 0.6 px of a 1200 px wide graph,
too thin to see or click, and yet the bulk of a large profile's frames."""

MAX_FRAMES = 20_000
"""Frames kept at most (the widest): at most a couple of MB of HTML, and a responsive page."""

ROOT_NAME = "all"


@dataclass(frozen=True, slots=True)
class FlameGraph:
    """Merged stacks of one sample type, frames in depth-first order, siblings by name."""

    sample_type: ValueType
    total: int
    """Sum of the sample values drawn (positive ones: negative values exist in diff profiles)."""
    names: tuple[str, ...]
    frames: tuple[tuple[int, int, int], ...]
    """(index into names, depth, value) per frame; frame 0 is the root, "all", at depth 0."""
    dropped_frames: int
    """Frames not drawn, below drawn ones, for being narrower than min_fraction of the total (or
    past max_frames); what is below them is not drawn either, and not counted."""
    min_fraction: float
    max_frames_reached: bool
    """Whether frames wider than min_fraction were cut too, to keep only max_frames."""


def build_flamegraph(
    profile: Profile,
    *,
    sample_type: str | None = None,
    min_fraction: float = MIN_FRAME_FRACTION,
    max_frames: int = MAX_FRAMES,
) -> FlameGraph:
    """Merge the samples' stacks (root first) for a sample type (pprof's default if None)."""
    index = profile.sample_type_index(sample_type)
    table = frame_table(profile)
    stack_frames, offsets = table.stack_frames(profile)
    drawn = np.flatnonzero(profile.sample_values[:, index] > 0)
    # Every stack reversed, so root first: sample i's ends at len(root_first) - offsets[i].
    root_first = stack_frames[::-1].tolist()
    ends = (len(root_first) - offsets[drawn]).tolist()
    starts = (len(root_first) - offsets[drawn + 1]).tolist()
    weighted = [
        (tuple(root_first[start:end]), value)
        for start, end, value in zip(
            starts, ends, profile.sample_values[drawn, index].tolist(), strict=True
        )
    ]
    del root_first
    # Sorted stacks make the tree implicit: a frame is the run of stacks sharing its path, found
    # by bisection, its width a difference of prefix sums. Only the frames that are drawn, and
    # their too-narrow children, are ever looked at: the millions of thin frames deep in a large
    # profile cost nothing.
    weighted.sort(key=itemgetter(0))
    stacks = [stack for stack, _ in weighted]
    sums = list(accumulate((value for _, value in weighted), initial=0))
    del weighted
    total = sums[-1]
    threshold = max(1.0, total * min_fraction)

    names = [ROOT_NAME]
    name_index: dict[int, int] = {}
    kept: list[tuple[int, int, int]] = []  # (name, depth, value), by id
    children: dict[int, list[tuple[str, int]]] = {}  # id -> [(name, id)]
    dropped = 0
    # Widest first, so that if max_frames stops the walk, what is kept is the widest frames.
    queue: list[tuple[int, int, int, int, int, int, int]] = [(-total, 0, -1, 0, len(stacks), 0, -1)]
    order = 1
    max_frames_reached = False
    while queue:
        negative_value, _, frame, low, high, depth, parent = heapq.heappop(queue)
        if len(kept) >= max_frames:
            dropped += 1 + len(queue)
            max_frames_reached = True
            break
        node = len(kept)
        if frame < 0:
            kept.append((0, 0, -negative_value))
        else:
            position = name_index.get(frame)
            if position is None:
                position = name_index[frame] = len(names)
                names.append(table.names[frame])
            kept.append((position, depth, -negative_value))
            children.setdefault(parent, []).append((table.names[frame], node))
        if low == high:
            continue  # the root of a profile with nothing to draw
        prefix = stacks[low][:depth]
        start = bisect_right(stacks, prefix, low, high)  # stacks ending here sort first
        while start < high:
            child_frame = stacks[start][depth]
            stop = bisect_left(stacks, (*prefix, child_frame + 1), start, high)
            width = sums[stop] - sums[start]
            if width >= threshold:
                heapq.heappush(queue, (-width, order, child_frame, start, stop, depth + 1, node))
                order += 1
            else:
                dropped += 1
            start = stop

    frames: list[tuple[int, int, int]] = []
    pending = [0]
    while pending:
        node = pending.pop()
        frames.append(kept[node])
        below = sorted(children.get(node, ()), reverse=True)  # popped in name order
        pending.extend(child for _, child in below)
    return FlameGraph(
        sample_type=profile.sample_types[index],
        total=total,
        names=tuple(names),
        frames=tuple(frames),
        dropped_frames=dropped,
        min_fraction=min_fraction,
        max_frames_reached=max_frames_reached,
    )
