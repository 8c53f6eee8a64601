"""The fast pprof decoder: upb (protobuf's C runtime) for the message, numpy for the samples.

upb parses the body with profile.proto's types (wire_schema.py), the tables become the model's
dataclasses (a few thousand entries), and the samples, each handed over as its encoded bytes,
are decoded together into arrays by wire_arrays. It checks what `go tool pprof` checks (as
decode_python does) but does not explain: anything irregular raises IrregularWireError, and
profile.decode runs the pure-Python decoder instead, which decodes the file or says what is
wrong with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from spikeprof.pprof import wire_arrays, wire_schema
from spikeprof.pprof.model import (
    Function,
    Line,
    Location,
    Mapping,
    Profile,
    ValueType,
)
from spikeprof.pprof.wire_arrays import IrregularWireError, UInt64Array

if TYPE_CHECKING:
    from spikeprof.pprof.model import Int32Array, Int64Array

# The field numbers each message of profile.proto defines: one of them among the unknown
# fields means a wire type out of place (which upb keeps aside rather than refuse).
_KNOWN = {
    "Profile": frozenset(range(1, 16)),
    "ValueType": frozenset({1, 2}),
    "Mapping": frozenset(range(1, 11)),
    "Location": frozenset(range(1, 6)),
    "Line": frozenset({1, 2, 3}),
    "Function": frozenset(range(1, 6)),
}
_GROUP_WIRE_TYPES = frozenset({3, 4})
_Entry = TypeVar("_Entry", Mapping, Function, Location)


def decode_body(body: bytes) -> Profile:
    """Decode an uncompressed protobuf body; IrregularWireError for anything irregular."""
    try:
        message = wire_schema.profile_message().FromString(body)
    except DecodeError:
        raise IrregularWireError("upb refused the body") from None
    _check_known(message, "Profile")
    strings = tuple(text.decode("utf-8", "replace") for text in message.string_table)
    if not strings or strings[0]:
        raise IrregularWireError("the string table is missing or does not start empty")
    string = _StringTable(strings)

    sample_types = tuple(_value_type(v, string) for v in message.sample_type)
    mappings = _table(_mapping(m, string) for m in message.mapping)
    functions = _table(_function(f, string) for f in message.function)
    locations = _table(_location(loc) for loc in message.location)
    for location in locations.values():
        if location.mapping_id and location.mapping_id not in mappings:
            raise IrregularWireError("a location refers to a mapping not defined")
        if any(line.function_id not in functions for line in location.lines):
            raise IrregularWireError("a location refers to a function not defined")

    period_type = None
    if message.HasField("period_type"):
        period_type = _value_type(message.period_type, string)
    scalars = _Scalars(message, string)
    stacks = _Samples(message.sample, len(body), len(sample_types), locations, len(strings))
    return Profile(
        sample_types=sample_types,
        stack_offsets=stacks.offsets,
        stack_locations=stacks.locations,
        sample_values=stacks.values,
        label_samples=stacks.label_samples,
        label_fields=stacks.label_fields,
        strings=strings,
        mappings=MappingProxyType(mappings),
        locations=MappingProxyType(locations),
        functions=MappingProxyType(functions),
        period_type=period_type,
        period=scalars.period,
        time_nanos=scalars.time_nanos,
        duration_nanos=scalars.duration_nanos,
        default_sample_type=scalars.default_sample_type,
        comments=scalars.comments,
        drop_frames=scalars.drop_frames,
        keep_frames=scalars.keep_frames,
        doc_url=scalars.doc_url,
        main_mapping=next(iter(mappings.values()), None),
    )


class _Scalars:
    """The profile's own scalar fields, read before its message is let go."""

    def __init__(self, message: Any, string: _StringTable) -> None:
        self.period: int = message.period
        self.time_nanos: int = message.time_nanos
        self.duration_nanos: int = message.duration_nanos
        self.default_sample_type = string(message.default_sample_type)
        self.comments = tuple(string(c) for c in message.comment)
        self.drop_frames = string(message.drop_frames)
        self.keep_frames = string(message.keep_frames)
        self.doc_url = string(message.doc_url)


class _StringTable:
    def __init__(self, strings: tuple[str, ...]) -> None:
        self.strings = strings

    def __call__(self, index: int) -> str:
        if 0 <= index < len(self.strings):
            return self.strings[index]
        raise IrregularWireError("a string index past the string table")


def _check_known(message: Any, kind: str) -> None:
    fields = unknown_fields.UnknownFieldSet(message)
    if len(fields):
        known = _KNOWN[kind]
        for position in range(len(fields)):
            field = fields[position]
            if field.field_number in known or field.wire_type in _GROUP_WIRE_TYPES:
                raise IrregularWireError(f"a {kind} field with a wire type out of place")


def _table(entries: Iterable[_Entry]) -> dict[int, _Entry]:
    table: dict[int, _Entry] = {}
    for entry in entries:
        if entry.id == 0 or entry.id in table:
            raise IrregularWireError("an id of 0, or defined twice")
        table[entry.id] = entry
    return table


def _value_type(message: Any, string: _StringTable) -> ValueType:
    _check_known(message, "ValueType")
    return ValueType(string(message.type), string(message.unit))


def _mapping(m: Any, string: _StringTable) -> Mapping:
    _check_known(m, "Mapping")
    return Mapping(
        id=m.id,
        memory_start=m.memory_start,
        memory_limit=m.memory_limit,
        file_offset=m.file_offset,
        filename=string(m.filename),
        build_id=string(m.build_id),
        has_functions=m.has_functions,
        has_filenames=m.has_filenames,
        has_line_numbers=m.has_line_numbers,
        has_inline_frames=m.has_inline_frames,
    )


def _function(f: Any, string: _StringTable) -> Function:
    _check_known(f, "Function")
    return Function(f.id, string(f.name), string(f.system_name), string(f.filename), f.start_line)


def _location(loc: Any) -> Location:
    _check_known(loc, "Location")
    lines = []
    for line in loc.line:
        _check_known(line, "Line")
        lines.append(Line(line.function_id, line.line, line.column))
    return Location(loc.id, loc.mapping_id, loc.address, tuple(lines), loc.is_folded)


SAMPLE_BYTES_PER_STEP = 256 << 10
"""Encoded samples decoded together, about (as many samples as the body's average sample
size gives): enough for numpy to run at full speed, and few enough that its temporary arrays
(eight bytes per packed varint, several at a time) stay a few MiB, whatever the profile's
size; and only this many samples are copied out of upb's message at a time."""


class _Samples:
    """Every sample's stack, values and labels, decoded from their bytes, many at a time."""

    def __init__(
        self,
        bodies: Sequence[bytes],
        body_size: int,
        value_count: int,
        locations: dict[int, Location],
        string_count: int,
    ) -> None:
        count = len(bodies)
        if count and not value_count:
            raise IrregularWireError("samples but no sample types")
        per_step = max(1, SAMPLE_BYTES_PER_STEP * count // max(body_size, 1))
        bounds = [*range(0, count, per_step), count]
        lookup = _LocationLookup(locations)
        stacks: list[Int32Array] = []
        stack_lengths: list[Int64Array] = []
        values: list[Int64Array] = []
        label_samples: list[Int64Array] = []
        label_fields: list[Int64Array] = []
        for first, stop in itertools.pairwise(bounds):
            step = bodies[first:stop]
            lengths = np.fromiter(map(len, step), dtype=np.int64, count=len(step))
            step_ends = np.cumsum(lengths)
            wire = wire_arrays.WireBuffer(b"".join(step))
            del step
            fields = wire.fields(step_ends - lengths, step_ends)

            ids, owners = _repeated_varints(wire, fields, 1)
            stack_lengths.append(np.bincount(owners, minlength=len(lengths)))
            stacks.append(lookup.indices(ids))

            numbers, owners = _repeated_varints(wire, fields, 2)
            if (np.bincount(owners, minlength=len(lengths)) != value_count).any():
                raise IrregularWireError("a sample without one value per sample type")
            values.append(numbers.view(np.int64))

            is_label = fields.number == 3
            if (fields.wire[is_label] != wire_arrays.LENGTH_DELIMITED).any():
                raise IrregularWireError("a label that is not a message")
            label_samples.append(fields.owner[is_label] + first)
            label_fields.append(
                _labels(wire, fields.start[is_label], fields.end[is_label], string_count)
            )
        self.offsets: Int64Array = np.zeros(count + 1, dtype=np.int64)
        self.locations: Int32Array = np.zeros(0, dtype=np.int32)
        self.values: Int64Array = np.zeros((count, value_count), dtype=np.int64)
        self.label_samples: Int64Array = np.zeros(0, dtype=np.int64)
        self.label_fields: Int64Array = np.zeros((0, 4), dtype=np.int64)
        if count:
            np.cumsum(np.concatenate(stack_lengths), out=self.offsets[1:])
            self.locations = np.concatenate(stacks)
            self.values = np.concatenate(values).reshape(count, value_count)
            self.label_samples = np.concatenate(label_samples)
            self.label_fields = np.concatenate(label_fields)


def _repeated_varints(
    wire: wire_arrays.WireBuffer, fields: wire_arrays.Fields, number: int
) -> tuple[Any, Int64Array]:
    # A repeated scalar field of every message, packed or not: (values, owner of each), in order.
    mine = fields.number == number
    wires = fields.wire[mine]
    packed = mine & (fields.wire == wire_arrays.LENGTH_DELIMITED)
    all_packed = bool((wires == wire_arrays.LENGTH_DELIMITED).all())
    values, span, positions = wire.packed_varints(
        fields.start[packed], fields.end[packed], positions=not all_packed
    )
    owners = fields.owner[packed][span]
    if all_packed:
        return values, owners  # as Go writes them, and in order already
    if not np.isin(wires, (wire_arrays.VARINT, wire_arrays.LENGTH_DELIMITED)).all():
        raise IrregularWireError("a repeated varint field of another wire type")
    single = mine & (fields.wire == wire_arrays.VARINT)
    assert positions is not None
    positions = np.concatenate([positions, fields.start[single]])
    order = np.argsort(positions, kind="stable")
    return (
        np.concatenate([values, fields.value[single]])[order],
        np.concatenate([owners, fields.owner[single]])[order],
    )


_DENSE_IDS_PER_LOCATION = 8
"""Location ids at most this many times the number of locations are looked up in a table indexed
by id (Go numbers them 1..n); sparser ones by binary search, several times slower."""


class _LocationLookup:
    """Location ids -> indices into the location table (its file order)."""

    def __init__(self, locations: dict[int, Location]) -> None:
        self.known = np.fromiter(locations, dtype=np.uint64, count=len(locations))
        self.by_id: Int32Array | None = None
        largest = int(self.known.max()) if len(self.known) else 0
        if largest <= _DENSE_IDS_PER_LOCATION * len(self.known) + 1024:
            self.by_id = np.full(largest + 1, -1, dtype=np.int32)
            self.by_id[self.known.astype(np.int64)] = np.arange(len(self.known), dtype=np.int32)
        self.order = np.argsort(self.known).astype(np.int32)
        self.ordered = self.known[self.order]

    def indices(self, ids: UInt64Array) -> Int32Array:
        """The index of each id's location; IrregularWireError if one is not defined."""
        if not len(ids):
            return np.zeros(0, dtype=np.int32)
        if not len(self.known):
            raise IrregularWireError("a sample refers to a location, and there are none")
        if self.by_id is not None and int(ids.max()) < len(self.by_id):
            found = self.by_id[ids.astype(np.intp)]
            if (found < 0).any():
                raise IrregularWireError("a sample refers to a location not defined")
            return found
        where = np.minimum(np.searchsorted(self.ordered, ids), len(self.ordered) - 1)
        if (self.ordered[where] != ids).any():
            raise IrregularWireError("a sample refers to a location not defined")
        return self.order[where]


def _labels(
    wire: wire_arrays.WireBuffer, starts: Int64Array, ends: Int64Array, string_count: int
) -> Int64Array:
    # (labels, 4): key, str, num, num_unit of each label, as int64.
    table = np.zeros((len(starts), 4), dtype=np.int64)
    if not len(starts):
        return table
    fields = wire.fields(starts, ends)
    mine = (fields.number >= 1) & (fields.number <= 4)
    if (fields.wire[mine] != wire_arrays.VARINT).any():
        raise IrregularWireError("a label field that is not a varint")
    owners, numbers = fields.owner[mine], fields.number[mine]
    keys = np.sort(owners * 5 + numbers)
    if (keys[1:] == keys[:-1]).any():
        raise IrregularWireError("a label field given twice")  # the last would win: rare
    table[owners, numbers - 1] = fields.value[mine].view(np.int64)
    strings = table[:, [0, 1, 3]]
    if ((strings < 0) | (strings >= string_count)).any():
        raise IrregularWireError("a label string index past the string table")
    return table
