"""Stack frames named as `go tool pprof` names them at its default granularity, "functions".

pprof makes one node per function name, whatever the file, line or address; inlined calls are
frames of their own (a location's first line is the innermost). A frame without a function name
is named after its binary ("[pprof-target]"), or "<unknown>" if it has none. Summaries and flame
graphs both build on this table, so both count the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spikeprof.pprof.model import Profile

# numpy is imported in the functions that use it, not here: the operator imports this module
# at start, and should take numpy's ~17 MiB only once it analyses a profile.
if TYPE_CHECKING:
    from spikeprof.pprof.model import Int64Array


@dataclass(frozen=True, slots=True)
class FrameTable:
    """Every frame of a profile, numbered, and the frames of each location."""

    names: tuple[str, ...]
    """The printable name of each frame, by frame number."""

    by_location: dict[int, tuple[int, ...]]
    """Location id -> its frame numbers, innermost first (read-only by convention)."""

    frame_offsets: Int64Array
    """By location index (Profile.stack_locations), where its frames start in frame_numbers;
    one more entry than locations. Every location has at least one frame."""

    frame_numbers: Int64Array
    """The frames of every location, innermost first, one location after the other."""

    def stack_frames(
        self, profile: Profile, first: int = 0, stop: int | None = None
    ) -> tuple[Int64Array, Int64Array]:
        """The frames of samples first..stop-1 (all by default), leaf first, as (frames,
        offsets): sample first+i's frames are frames[offsets[i]:offsets[i + 1]], each
        location's inlined frames expanded in place."""
        import numpy as np

        stop = profile.sample_count if stop is None else stop
        bounds = profile.stack_offsets[first : stop + 1]
        locations = profile.stack_locations[bounds[0] : bounds[-1]]
        counts = np.diff(self.frame_offsets)[locations]
        ends = np.cumsum(counts)
        picks = np.repeat(self.frame_offsets[locations] - (ends - counts), counts)
        picks += np.arange(len(picks))
        frames: Int64Array = self.frame_numbers[picks]
        # Frames before each location entry, so before each sample's first.
        before = np.zeros(len(counts) + 1, dtype=np.int64)
        before[1:] = ends
        offsets: Int64Array = before[bounds - bounds[0]]
        return frames, offsets


def _base_name(path: str) -> str:
    # Go's filepath.Base, which pprof applies to a binary's path.
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def frame_table(profile: Profile) -> FrameTable:
    import numpy as np

    # pprof's node identity at "functions" granularity: the name; for a nameless frame, its
    # binary and the function's start line (kept apart, though both print as "[binary]").
    numbers: dict[tuple[str, str, int], int] = {}
    names: list[str] = []
    by_location: dict[int, tuple[int, ...]] = {}
    frame_offsets = [0]
    frame_numbers: list[int] = []
    functions = profile.functions
    mappings = profile.mappings
    for location in profile.locations.values():
        mapping = mappings.get(location.mapping_id)
        binary = mapping.filename if mapping is not None else ""
        keys: list[tuple[str, str, int]] = []
        for line in location.lines:
            function = functions[line.function_id]
            if function.name:
                keys.append((function.name, "", 0))
            else:
                keys.append(("", binary, function.start_line))
        if not keys:
            keys.append(("", binary, 0))
        frames: list[int] = []
        for key in keys:
            number = numbers.get(key)
            if number is None:
                number = numbers[key] = len(names)
                name, binary_of_key, _ = key
                if name:
                    names.append(name)
                elif binary_of_key:
                    names.append(f"[{_base_name(binary_of_key)}]")
                else:
                    names.append("<unknown>")
            frames.append(number)
        by_location[location.id] = tuple(frames)
        frame_numbers.extend(frames)
        frame_offsets.append(len(frame_numbers))
    return FrameTable(
        tuple(names),
        by_location,
        np.array(frame_offsets, dtype=np.int64),
        np.array(frame_numbers, dtype=np.int64),
    )
