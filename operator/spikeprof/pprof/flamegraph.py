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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spikeprof.pprof.frames import FrameTable, frame_table
from spikeprof.pprof.model import Profile, ValueType

# numpy is imported in the functions that use it, not here: the operator imports this module
# at start, and should take numpy's ~17 MiB only once it analyses a profile.
if TYPE_CHECKING:
    from spikeprof.pprof.model import Int64Array

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
    import numpy as np

    index = profile.sample_type_index(sample_type)
    table = frame_table(profile)
    drawn = np.flatnonzero(profile.sample_values[:, index] > 0)
    weights = profile.sample_values[drawn, index]
    total = int(weights.sum())
    threshold = max(1.0, total * min_fraction)
    tree = _Tree(len(table.names))
    if len(drawn):
        tree.grow(table, profile, drawn, weights, threshold)
    kept, dropped, max_frames_reached = tree.widest(max_frames)

    names = [ROOT_NAME]
    name_index: dict[int, int] = {}
    children: dict[int, list[tuple[str, int, int]]] = {}
    for node in kept[1:]:
        frame = tree.frame[node]
        children.setdefault(tree.parent[node], []).append((table.names[frame], frame, node))
    frames: list[tuple[int, int, int]] = []
    pending = [0]
    while pending:
        node = pending.pop()
        position = 0
        if node:
            frame = tree.frame[node]
            position = name_index.get(frame, 0)
            if not position:
                position = name_index[frame] = len(names)
                names.append(table.names[frame])
        frames.append((position, tree.depth[node], tree.width[node]))
        below = sorted(children.get(node, ()), reverse=True)  # popped in name order
        pending.extend(child for _, _, child in below)
    return FlameGraph(
        sample_type=profile.sample_types[index],
        total=total,
        names=tuple(names),
        frames=tuple(frames),
        dropped_frames=dropped,
        min_fraction=min_fraction,
        max_frames_reached=max_frames_reached,
    )


class _Tree:
    """Every frame at least as wide as the threshold, and how many thin ones hang below each."""

    def __init__(self, frame_count: int) -> None:
        self.frame_count = frame_count
        self.frame = [-1]  # node 0 is the root
        self.parent = [-1]
        self.depth = [0]
        self.width = [0]
        self.thin_children = [0]

    def grow(
        self,
        table: FrameTable,
        profile: Profile,
        drawn: Int64Array,
        weights: Int64Array,
        threshold: float,
    ) -> None:
        """Add the frames of the drawn samples (their weights given) at least threshold wide."""
        import numpy as np

        from spikeprof.pprof import sums

        self.width[0] = int(weights.sum())
        frames_per_location = np.diff(table.frame_offsets)
        locations = profile.stack_locations
        # A cursor per sample, from the root down: its location entry and the frame in it
        # (a location's frames are innermost first, so its outermost is the last).
        bottom = profile.stack_offsets[drawn]
        entry = profile.stack_offsets[drawn + 1] - 1
        samples = np.flatnonzero(entry >= bottom)  # those still under a drawn frame
        entry = entry[samples]
        position = frames_per_location[locations[entry]] - 1
        node_of = np.zeros(len(drawn), dtype=np.int64)  # the deepest drawn frame over each
        depth = 1
        while len(samples):
            frame = table.frame_numbers[table.frame_offsets[locations[entry]] + position]
            keys = node_of[samples] * self.frame_count + frame
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            heads = np.ones(len(ordered), dtype=np.bool_)
            np.not_equal(ordered[1:], ordered[:-1], out=heads[1:])
            group = np.empty(len(keys), dtype=np.int64)
            group[order] = np.cumsum(heads) - 1
            groups = ordered[heads]
            widths = sums.weighted_counts(group, weights[samples], len(groups))
            wide = widths >= threshold
            group_parent, group_frame = np.divmod(groups, self.frame_count)
            for parent in group_parent[~wide].tolist():
                self.thin_children[parent] += 1
            first_new = len(self.frame)
            wide_groups = np.flatnonzero(wide)
            self.frame.extend(group_frame[wide_groups].tolist())
            self.parent.extend(group_parent[wide_groups].tolist())
            self.width.extend(widths[wide_groups].tolist())
            self.depth.extend([depth] * len(wide_groups))
            self.thin_children.extend([0] * len(wide_groups))
            node_of_group = np.full(len(groups), -1, dtype=np.int64)
            node_of_group[wide_groups] = np.arange(first_new, len(self.frame))
            # On to the next frame down, for the samples in a wide frame that have one.
            still = wide[group]
            samples, entry, position = samples[still], entry[still], position[still] - 1
            node_of[samples] = node_of_group[group[still]]
            next_entry = position < 0
            entry[next_entry] -= 1
            deeper = entry >= bottom[samples]
            samples, entry, position = samples[deeper], entry[deeper], position[deeper]
            moved = np.flatnonzero(next_entry[deeper])
            position[moved] = frames_per_location[locations[entry[moved]]] - 1
            depth += 1

    def widest(self, max_frames: int) -> tuple[list[int], int, bool]:
        """The nodes drawn (at most max_frames, the widest, a parent before its children), the
        frames not drawn below drawn ones, and whether max_frames cut any wide one."""
        import numpy as np

        nodes = len(self.frame)
        if nodes <= max_frames:
            return list(range(nodes)), sum(self.thin_children), False
        # Widest first, shallower first among equals: a child is never wider than its parent,
        # so what is kept is still one tree.
        order = np.lexsort((np.arange(nodes), np.array(self.depth), -np.array(self.width)))
        kept = sorted(order[:max_frames].tolist())
        is_kept = np.zeros(nodes, dtype=np.bool_)
        is_kept[kept] = True
        parents = np.array(self.parent[1:])
        cut = int((~is_kept[1:] & is_kept[parents]).sum())  # wide, but past max_frames
        thin = int(np.array(self.thin_children)[is_kept].sum())
        return kept, thin + cut, True
