"""The pure-Python pprof decoder: slower than decode_upb, and it explains bad files in words.

profile.decode runs decode_upb first. When that meets anything irregular (a protobuf error, a
dangling id, a wire type out of place), it hands the body to this decoder, which walks the
protobuf wire format by hand and says exactly what is wrong with the file, where, in words a
person understands; or decodes it, when the file is odd but valid (a label field given twice,
which the fast decoder does not take). It is also the reference the fast decoder is tested
against (tests/unit/test_pprof_decode.py). Seven to eight times slower on large profiles, it is
kept for these and for nothing else. Every failure is a ProfileDecodeError; no IndexError,
KeyError or MemoryError escapes, whatever the bytes.

Decoding follows `go tool pprof` (profile.Parse and CheckValid): strings are resolved through
the string table, every id a sample or location refers to must exist, every sample carries one
value per sample type, and repeated scalar fields are accepted packed or not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import TypeVar

import numpy as np

from spikeprof.errors import SpikeprofError
from spikeprof.pprof.model import (
    Function,
    Line,
    Location,
    Mapping,
    Profile,
    ProfileDecodeError,
    ValueType,
)

_INT64_SIGN = 1 << 63
_UINT64_RANGE = 1 << 64

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_WIRE_TYPE_NAMES = {3: "a group start", 4: "a group end", 6: "undefined", 7: "undefined"}

_Entry = TypeVar("_Entry", Mapping, Function, Location)


def decode_body(body: bytes) -> Profile:
    """Decode an uncompressed protobuf body (ProfileDecodeError, in words, if it is bad)."""
    return _ProfileDecoder(body).decode()


def _int64(value: int) -> int:
    return value - _UINT64_RANGE if value >= _INT64_SIGN else value


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise ProfileDecodeError(f"a varint at byte {pos} is cut off by the end of its message")
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise ProfileDecodeError(f"a varint at byte {pos} is cut off by the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result >= _UINT64_RANGE:
                raise ProfileDecodeError(f"a varint ending at byte {pos} overflows 64 bits")
            return result, pos
        shift += 7
        if shift > 63:
            raise ProfileDecodeError(f"a varint at byte {pos} runs past 10 bytes")


def _packed_varints(buf: bytes, start: int, end: int, *, signed: bool) -> list[int]:
    chunk = buf[start:end]
    if chunk.isascii():  # every varint is one byte (a C-speed check): the common case
        return list(chunk)
    values: list[int] = []
    append = values.append
    value = shift = 0
    for byte in chunk:
        if byte < 0x80:
            value |= byte << shift
            if value >= _INT64_SIGN:
                if value >= _UINT64_RANGE:
                    raise ProfileDecodeError(f"a packed varint before byte {end} overflows 64 bits")
                if signed:
                    value -= _UINT64_RANGE
            append(value)
            value = shift = 0
        else:
            value |= (byte & 0x7F) << shift
            shift += 7
            if shift > 63:
                raise ProfileDecodeError(f"a packed varint before byte {end} runs past 10 bytes")
    if shift:
        raise ProfileDecodeError(f"the packed varints ending at byte {end} end in a cut varint")
    return values


# One protobuf field: number, wire type, and (value, 0) for a varint or (start, end) otherwise.
_Field = tuple[int, int, int, int]


def _fields(buf: bytes, pos: int, end: int, message: str) -> list[_Field]:
    fields: list[_Field] = []
    append = fields.append
    while pos < end:
        key = buf[pos]
        if key < 0x80:  # fields 1-15 have one-byte keys: skip the general varint reader
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProfileDecodeError(f"{message} has a field numbered 0 at byte {pos}")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            append((number, wire, value, 0))
            continue
        if wire == _LENGTH_DELIMITED:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            stop = pos + length
        elif wire == _FIXED64:
            stop = pos + 8
        elif wire == _FIXED32:
            stop = pos + 4
        else:
            raise ProfileDecodeError(
                f"{message} has field {number} with wire type {wire} "
                f"({_WIRE_TYPE_NAMES[wire]}), which a pprof profile never uses"
            )
        if stop > end:
            raise ProfileDecodeError(
                f"field {number} of {message}, at byte {pos}, claims {stop - pos} bytes, "
                f"but only {end - pos} remain"
            )
        append((number, wire, pos, stop))
        pos = stop
    return fields


class _UndefinedLocationError(SpikeprofError, LookupError):
    """A sample names a location id the profile does not define (reported with the sample)."""


class _LocationIds(dict[bytes, int]):
    """The bytes of one varint -> the index of the location whose id they encode.

    A profile has a few thousand locations and their ids recur in every sample, so decoding each
    distinct varint once and then looking the bytes up (in C) is several times faster than
    decoding byte by byte, and every sample shares the same int objects.
    """

    def __init__(self, canonical: dict[int, int]) -> None:
        super().__init__()
        self.canonical = canonical
        """Location id -> its index in the location table."""

    def __missing__(self, token: bytes) -> int:
        if len(token) > 10:
            raise ProfileDecodeError("a packed location id runs past 10 bytes")
        value = 0
        for shift, byte in enumerate(token):
            value |= (byte & 0x7F) << (7 * shift)
        location_index = self.canonical.get(value)
        if location_index is None:
            raise _UndefinedLocationError(value)
        self[token] = location_index
        return location_index


_VARINT_TOKEN = re.compile(rb"[\x80-\xff]*[\x00-\x7f]")


def _expect(wire: int, expected: int, message: str, field: str) -> None:
    if wire != expected:
        kind = "a varint" if expected == _VARINT else "length-delimited"
        raise ProfileDecodeError(f"field {field} of {message} has wire type {wire}, not {kind}")


class _ProfileDecoder:
    """Reads one protobuf body; tables are decoded before the samples that refer to them."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.strings: list[str] = []
        self._labels: list[list[int]] = []  # the last sample's labels: key, str, num, num_unit

    def decode(self) -> Profile:
        buf = self.buf
        spans: dict[int, list[tuple[int, int]]] = {n: [] for n in (1, 2, 3, 4, 5, 6, 11)}
        scalars: dict[int, int] = {}
        comments: list[int] = []
        for number, wire, a, b in _fields(buf, 0, len(buf), "the profile"):
            if number in spans:
                _expect(wire, _LENGTH_DELIMITED, "the profile", _PROFILE_FIELDS[number])
                spans[number].append((a, b))
            elif number == 13:  # repeated int64 comment: packed or not
                if wire == _VARINT:
                    comments.append(a)
                else:
                    _expect(wire, _LENGTH_DELIMITED, "the profile", "13 (comment)")
                    comments.extend(_packed_varints(buf, a, b, signed=True))
            elif number in _PROFILE_FIELDS:
                _expect(wire, _VARINT, "the profile", _PROFILE_FIELDS[number])
                scalars[number] = _int64(a)
            # Other fields are newer additions to profile.proto: skipped, as protobuf does.

        self.strings = [buf[a:b].decode("utf-8", "replace") for a, b in spans[6]]
        if not self.strings:
            raise ProfileDecodeError("the profile has no string table, so it is not a pprof one")
        if self.strings[0]:
            raise ProfileDecodeError(
                f"the string table must start with an empty string, not {self.strings[0]!r}"
            )
        sample_types = tuple(self._value_type(a, b, "a sample type") for a, b in spans[1])
        mappings = self._table(spans[3], self._mapping, "mapping")
        functions = self._table(spans[5], self._function, "function")
        locations = self._table(spans[4], self._location, "location")
        for location in locations.values():
            if location.mapping_id and location.mapping_id not in mappings:
                raise ProfileDecodeError(
                    f"location {location.id} refers to mapping {location.mapping_id}, "
                    "which the profile does not define"
                )
            for line in location.lines:
                if line.function_id not in functions:
                    raise ProfileDecodeError(
                        f"location {location.id} has a line in function {line.function_id}, "
                        "which the profile does not define"
                    )
        known_ids = _LocationIds({location_id: n for n, location_id in enumerate(locations)})
        stacks: list[int] = []
        offsets = [0]
        values: list[int] = []
        label_samples: list[int] = []
        label_fields: list[list[int]] = []
        for index, (a, b) in enumerate(spans[2]):
            self._sample(a, b, index, known_ids, len(sample_types), stacks, values)
            offsets.append(len(stacks))
            for label in self._labels:
                label_samples.append(index)
                label_fields.append(label)
        if spans[2] and not sample_types:
            raise ProfileDecodeError("the profile has samples but no sample types")
        period_type = None
        if spans[11]:
            period_type = self._value_type(*spans[11][-1], "the period type")
        return Profile(
            sample_types=sample_types,
            stack_offsets=np.array(offsets, dtype=np.int64),
            stack_locations=np.array(stacks, dtype=np.int32),
            sample_values=np.array(values, dtype=np.int64).reshape(
                len(spans[2]), len(sample_types)
            ),
            label_samples=np.array(label_samples, dtype=np.int64),
            label_fields=np.array(label_fields, dtype=np.int64).reshape(-1, 4),
            strings=tuple(self.strings),
            mappings=MappingProxyType(mappings),
            locations=MappingProxyType(locations),
            functions=MappingProxyType(functions),
            period_type=period_type,
            period=scalars.get(12, 0),
            time_nanos=scalars.get(9, 0),
            duration_nanos=scalars.get(10, 0),
            default_sample_type=self._string(scalars.get(14, 0), "default_sample_type"),
            comments=tuple(self._string(c, "a comment") for c in comments),
            drop_frames=self._string(scalars.get(7, 0), "drop_frames"),
            keep_frames=self._string(scalars.get(8, 0), "keep_frames"),
            doc_url=self._string(scalars.get(15, 0), "doc_url"),
            main_mapping=next(iter(mappings.values()), None),
        )

    def _string(self, index: int, what: str) -> str:
        if 0 <= index < len(self.strings):
            return self.strings[index]
        raise ProfileDecodeError(
            f"{what} refers to string {index}, but the string table has {len(self.strings)} entries"
        )

    def _table(
        self,
        spans: list[tuple[int, int]],
        decode_one: Callable[[int, int], _Entry],
        kind: str,
    ) -> dict[int, _Entry]:
        table: dict[int, _Entry] = {}
        for a, b in spans:
            entry = decode_one(a, b)
            if entry.id == 0:
                raise ProfileDecodeError(f"a {kind} has id 0, which pprof reserves")
            if entry.id in table:
                raise ProfileDecodeError(f"the profile defines {kind} {entry.id} twice")
            table[entry.id] = entry
        return table

    def _value_type(self, start: int, end: int, what: str) -> ValueType:
        type_index = unit_index = 0
        for number, wire, a, _ in _fields(self.buf, start, end, what):
            if number in (1, 2):
                _expect(wire, _VARINT, what, "type" if number == 1 else "unit")
                if number == 1:
                    type_index = _int64(a)
                else:
                    unit_index = _int64(a)
        return ValueType(self._string(type_index, what), self._string(unit_index, what))

    def _mapping(self, start: int, end: int) -> Mapping:
        values = [0] * 11
        for number, wire, a, _ in _fields(self.buf, start, end, "a mapping"):
            if 1 <= number <= 10:
                _expect(wire, _VARINT, "a mapping", str(number))
                values[number] = a
        return Mapping(
            id=values[1],
            memory_start=values[2],
            memory_limit=values[3],
            file_offset=values[4],
            filename=self._string(_int64(values[5]), "a mapping's filename"),
            build_id=self._string(_int64(values[6]), "a mapping's build id"),
            has_functions=bool(values[7]),
            has_filenames=bool(values[8]),
            has_line_numbers=bool(values[9]),
            has_inline_frames=bool(values[10]),
        )

    def _function(self, start: int, end: int) -> Function:
        values = [0] * 6
        for number, wire, a, _ in _fields(self.buf, start, end, "a function"):
            if 1 <= number <= 5:
                _expect(wire, _VARINT, "a function", str(number))
                values[number] = a
        what = f"function {values[1]}"
        return Function(
            id=values[1],
            name=self._string(_int64(values[2]), what),
            system_name=self._string(_int64(values[3]), what),
            filename=self._string(_int64(values[4]), what),
            start_line=_int64(values[5]),
        )

    def _location(self, start: int, end: int) -> Location:
        buf = self.buf
        location_id = mapping_id = address = 0
        is_folded = False
        lines: list[Line] = []
        for number, wire, a, b in _fields(buf, start, end, "a location"):
            if number == 4:
                _expect(wire, _LENGTH_DELIMITED, "a location", "4 (line)")
                lines.append(self._line(a, b))
            elif 1 <= number <= 5:
                _expect(wire, _VARINT, "a location", str(number))
                if number == 1:
                    location_id = a
                elif number == 2:
                    mapping_id = a
                elif number == 3:
                    address = a
                else:
                    is_folded = bool(a)
        return Location(location_id, mapping_id, address, tuple(lines), is_folded)

    def _line(self, start: int, end: int) -> Line:
        values = [0, 0, 0, 0]
        for number, wire, a, _ in _fields(self.buf, start, end, "a location's line"):
            if 1 <= number <= 3:
                _expect(wire, _VARINT, "a location's line", str(number))
                values[number] = a
        return Line(values[1], _int64(values[2]), _int64(values[3]))

    def _sample(
        self,
        start: int,
        end: int,
        index: int,
        known_ids: _LocationIds,
        value_count: int,
        stacks: list[int],
        all_values: list[int],
    ) -> None:
        # Appends the sample's location indices to stacks and its values to all_values, and
        # leaves its labels in self._labels.
        buf = self.buf
        location_ids: list[int] = []
        values: list[int] = []
        self._labels = []
        what = f"sample {index}"
        try:
            for number, wire, a, b in _fields(buf, start, end, what):
                if number == 1:  # repeated uint64 location_id: packed (as Go writes it) or not
                    if wire == _LENGTH_DELIMITED:
                        if a < b and buf[b - 1] >= 0x80:
                            raise ProfileDecodeError(f"{what} has a cut varint in its locations")
                        location_ids.extend(
                            map(known_ids.__getitem__, _VARINT_TOKEN.findall(buf, a, b))
                        )
                    else:
                        _expect(wire, _VARINT, what, "1 (location_id)")
                        location_index = known_ids.canonical.get(a)
                        if location_index is None:
                            raise _UndefinedLocationError(a)
                        location_ids.append(location_index)
                elif number == 2:  # repeated int64 value: packed or not
                    if wire == _LENGTH_DELIMITED:
                        values.extend(_packed_varints(buf, a, b, signed=True))
                    else:
                        _expect(wire, _VARINT, what, "2 (value)")
                        values.append(_int64(a))
                elif number == 3:
                    _expect(wire, _LENGTH_DELIMITED, what, "3 (label)")
                    self._labels.append(self._label(a, b, what))
        except _UndefinedLocationError as error:
            raise ProfileDecodeError(
                f"{what} refers to location {error.args[0]}, which the profile does not define"
            ) from None
        if len(values) != value_count:
            raise ProfileDecodeError(
                f"{what} has {len(values)} values, but the profile has {value_count} sample types"
            )
        stacks.extend(location_ids)
        all_values.extend(values)

    def _label(self, start: int, end: int, sample: str) -> list[int]:
        values = [0] * 5
        what = f"a label of {sample}"
        for number, wire, a, _ in _fields(self.buf, start, end, what):
            if 1 <= number <= 4:
                _expect(wire, _VARINT, what, str(number))
                values[number] = _int64(a)
        for column in (1, 2, 4):  # key, str, num_unit: indices into the string table
            self._string(values[column], what)
        return values[1:]


_PROFILE_FIELDS = {
    1: "1 (sample_type)",
    2: "2 (sample)",
    3: "3 (mapping)",
    4: "4 (location)",
    5: "5 (function)",
    6: "6 (string_table)",
    7: "7 (drop_frames)",
    8: "8 (keep_frames)",
    9: "9 (time_nanos)",
    10: "10 (duration_nanos)",
    11: "11 (period_type)",
    12: "12 (period)",
    14: "14 (default_sample_type)",
    15: "15 (doc_url)",
}
