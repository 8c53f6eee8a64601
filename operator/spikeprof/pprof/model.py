"""A decoded pprof profile: its tables as frozen dataclasses, its samples as numpy arrays.

The format is `perftools.profiles.Profile` from github.com/google/pprof (proto/profile.proto).
Samples are columns, not objects: a large profile has hundreds of thousands of samples and
millions of stack entries, and summaries and flame graphs aggregate them with numpy
(summary.py, flamegraph.py). `Profile.samples` still gives them as Sample objects, built on
demand, for code that reads a few.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from spikeprof.errors import SpikeprofError

# numpy is imported in the functions that use it, not here: the operator imports this module
# at start, and should take numpy's ~17 MiB only once it analyses a profile.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int64Array: TypeAlias = npt.NDArray[np.int64]
    Int32Array: TypeAlias = npt.NDArray[np.int32]
    UInt64Array: TypeAlias = npt.NDArray[np.uint64]


class ProfileDecodeError(SpikeprofError, ValueError):
    """The bytes are not a pprof profile that can be read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ValueType:
    """What a sample value or the period measures, e.g. ("cpu", "nanoseconds")."""

    type: str
    unit: str


@dataclass(frozen=True, slots=True)
class Label:
    """A sample label: text (`str` in the proto) or a number with an optional unit."""

    key: str
    text: str | None
    number: int | None
    unit: str


@dataclass(frozen=True, slots=True)
class Sample:
    """Values measured at one stack; location_ids[0] is the leaf (where the sample was taken)."""

    location_ids: tuple[int, ...]
    values: tuple[int, ...]
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True)
class Mapping:
    """A binary or library mapped into the profiled process."""

    id: int
    memory_start: int
    memory_limit: int
    file_offset: int
    filename: str
    build_id: str
    has_functions: bool
    has_filenames: bool
    has_line_numbers: bool
    has_inline_frames: bool


@dataclass(frozen=True, slots=True)
class Line:
    """One frame of a location: a function and a line in it."""

    function_id: int
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Location:
    """A program counter; several lines when functions were inlined, the innermost first."""

    id: int
    mapping_id: int
    address: int
    lines: tuple[Line, ...]
    is_folded: bool


@dataclass(frozen=True, slots=True)
class Function:
    id: int
    name: str
    system_name: str
    filename: str
    start_line: int


LABEL_KEY, LABEL_STR, LABEL_NUM, LABEL_NUM_UNIT = range(4)
"""Columns of Profile.label_fields: the Label message's fields 1-4, string indices raw."""


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """A decoded profile; ids in locations resolve through the id-keyed tables.

    Sample i's stack is stack_locations[stack_offsets[i]:stack_offsets[i + 1]], leaf first, as
    indices into location_order (the locations in file order); its values are the row
    sample_values[i], one per sample type.
    """

    sample_types: tuple[ValueType, ...]
    stack_offsets: Int64Array
    """Per sample, where its stack starts in stack_locations; one more entry than samples."""
    stack_locations: Int32Array
    """Location indices (into location_order) of every stack, one stack after the other."""
    sample_values: Int64Array
    """Shape (samples, sample types)."""
    label_samples: Int64Array
    """For each label, the index of its sample (labels of one sample are consecutive)."""
    label_fields: Int64Array
    """Shape (labels, 4): key, str, num, num_unit (LABEL_KEY...), strings as indices."""
    strings: tuple[str, ...]
    """The string table."""
    mappings: MappingProxyType[int, Mapping]
    locations: MappingProxyType[int, Location]
    functions: MappingProxyType[int, Function]
    period_type: ValueType | None
    period: int
    time_nanos: int
    duration_nanos: int
    default_sample_type: str
    """The sample type the profile asks readers to show first ("" if it does not say)."""
    comments: tuple[str, ...]
    drop_frames: str
    keep_frames: str
    doc_url: str
    main_mapping: Mapping | None
    """The first mapping in the file: by convention the main binary (pprof's "File:")."""

    @property
    def sample_count(self) -> int:
        return len(self.stack_offsets) - 1

    @property
    def location_order(self) -> tuple[int, ...]:
        """Location ids in file order: what the indices in stack_locations refer to."""
        return tuple(self.locations)

    @property
    def samples(self) -> tuple[Sample, ...]:
        """Every sample as a Sample object: Python objects for each, so for small profiles."""
        ids = self.location_order
        offsets = self.stack_offsets.tolist()
        stacks = [ids[index] for index in self.stack_locations.tolist()]
        values = [tuple(row) for row in self.sample_values.tolist()]
        labels: list[list[Label]] = [[] for _ in values]
        for sample, (key, text, number, unit) in zip(
            self.label_samples.tolist(), self.label_fields.tolist(), strict=True
        ):
            strings = self.strings
            if text:  # as pprof: a label with a string is a text label, else a number
                labels[sample].append(Label(strings[key], strings[text], None, strings[unit]))
            else:
                labels[sample].append(Label(strings[key], None, number, strings[unit]))
        return tuple(
            Sample(tuple(stacks[offsets[i] : offsets[i + 1]]), values[i], tuple(labels[i]))
            for i in range(len(values))
        )

    def sample_type_index(self, name: str | None = None) -> int:
        """The index of a sample type by name, or of the one pprof shows when none is named.

        As `go tool pprof -sample_index`: with no name, the profile's default_sample_type if it
        names one of its sample types, else the last one (so a Go heap profile shows
        inuse_space); "inuse_x" also finds a legacy type "x".
        """
        if not self.sample_types:
            raise ProfileDecodeError("the profile has no sample types, so it has nothing to show")
        names = [t.type for t in self.sample_types]
        if name is None:
            if self.default_sample_type in names:
                return names.index(self.default_sample_type)
            return len(names) - 1
        for candidate in (name, name.removeprefix("inuse_")):
            if candidate in names:
                return names.index(candidate)
        raise ValueError(f"the profile has no sample type {name!r}; it has {', '.join(names)}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]  # equal by value, and holds mutable arrays


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)
