"""Stack frames named as `go tool pprof` names them at its default granularity, "functions".

pprof makes one node per function name, whatever the file, line or address; inlined calls are
frames of their own (a location's first line is the innermost). A frame without a function name
is named after its binary ("[pprof-target]"), or "<unknown>" if it has none. Summaries and flame
graphs both build on this table, so both count the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeprof.pprof.profile import Profile


@dataclass(frozen=True, slots=True)
class FrameTable:
    """Every frame of a profile, numbered, and the frames of each location."""

    names: tuple[str, ...]
    """The printable name of each frame, by frame number."""

    by_location: dict[int, tuple[int, ...]]
    """Location id -> its frame numbers, innermost first (read-only by convention)."""


def _base_name(path: str) -> str:
    # Go's filepath.Base, which pprof applies to a binary's path.
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def frame_table(profile: Profile) -> FrameTable:
    # pprof's node identity at "functions" granularity: the name; for a nameless frame, its
    # binary and the function's start line (kept apart, though both print as "[binary]").
    numbers: dict[tuple[str, str, int], int] = {}
    names: list[str] = []
    by_location: dict[int, tuple[int, ...]] = {}
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
    return FrameTable(tuple(names), by_location)
