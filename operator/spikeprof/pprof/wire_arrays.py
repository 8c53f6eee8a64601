"""The protobuf wire format of many small messages at once, with numpy.

A large profile has hundreds of thousands of Sample messages of a few fields each, and millions
of packed varints in them. Walking them one byte at a time in Python is what made decoding
slow; here every message advances one field per step, all of them in one numpy operation, and
packed varints are decoded all at once. The walk takes as many steps as the longest message has
fields (three for a Go sample: locations, values, a label).

Nothing here explains what is wrong with a bad message: anything irregular raises
IrregularWireError, and the caller hands the file to the pure-Python decoder (decode_python.py),
whose errors say what and where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spikeprof.errors import SpikeprofError

Bytes = npt.NDArray[np.uint8]
Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class IrregularWireError(SpikeprofError, ValueError):
    """Something the fast path does not take: the slow decoder will say what."""


@dataclass(frozen=True, slots=True)
class Fields:
    """Every field of a set of messages, in message order, then in order within a message."""

    owner: Int64Array
    """Index of the message the field is in."""
    number: Int64Array
    wire: Int64Array
    value: UInt64Array
    """A varint field's value (0 for the others)."""
    start: Int64Array
    """Where a length-delimited field's payload starts (for a varint: where its value does)."""
    end: Int64Array
    """Where the field ends."""


class WireBuffer:
    """Bytes to decode."""

    def __init__(self, data: bytes) -> None:
        self.bytes: Bytes = np.frombuffer(data, dtype=np.uint8)

    def varints_at(
        self, positions: Int64Array, limits: Int64Array
    ) -> tuple[UInt64Array, Int64Array]:
        """The varints starting at positions, each before its limit: (values, where each ends).

        One step per byte of the longest: for keys and lengths, which take one or two.
        """
        values = np.zeros(len(positions), dtype=np.uint64)
        ends = positions.copy()
        going = np.arange(len(positions))
        for shift in range(_MAX_VARINT_BYTES):
            if not len(going):
                return values, ends
            at = positions[going] + shift
            if (at >= limits[going]).any():
                raise IrregularWireError("a varint is cut by the end of its message")
            part = self.bytes[at]
            if shift == _MAX_VARINT_BYTES - 1 and (part > 1).any():
                raise IrregularWireError("a varint overflows 64 bits or runs past 10 bytes")
            values[going] |= (part & 0x7F).astype(np.uint64) << np.uint64(7 * shift)
            last = part < 0x80
            ends[going[last]] = at[last] + 1
            going = going[~last]
        if len(going):
            raise IrregularWireError("a varint runs past 10 bytes")
        return values, ends

    def fields(self, starts: Int64Array, ends: Int64Array) -> Fields:
        """Every field of the messages at [starts[i], ends[i])."""
        owners: list[Int64Array] = []
        keys: list[UInt64Array] = []
        values: list[UInt64Array] = []
        field_starts: list[Int64Array] = []
        field_ends: list[Int64Array] = []
        active = np.flatnonzero(starts < ends)
        position = starts[active]
        while len(active):
            limit = ends[active]
            key, after_key = self.varints_at(position, limit)
            wire = (key & np.uint64(7)).astype(np.int64)
            value = np.zeros(len(key), dtype=np.uint64)
            payload = after_key.copy()
            stop = after_key.copy()
            is_varint = wire == VARINT
            if is_varint.any():
                where = np.flatnonzero(is_varint)
                value[where], stop[where] = self.varints_at(after_key[where], limit[where])
            is_delimited = wire == LENGTH_DELIMITED
            if is_delimited.any():
                where = np.flatnonzero(is_delimited)
                length, payload[where] = self.varints_at(after_key[where], limit[where])
                if (length > np.uint64(1 << 40)).any():
                    raise IrregularWireError("a length is past any profile's size")
                stop[where] = payload[where] + length.astype(np.int64)
            stop[wire == FIXED64] += 8
            stop[wire == FIXED32] += 4
            if not np.isin(wire, (VARINT, FIXED64, LENGTH_DELIMITED, FIXED32)).all():
                raise IrregularWireError("a wire type a profile never uses")
            if (stop > limit).any():
                raise IrregularWireError("a field runs past the end of its message")
            owners.append(active)
            keys.append(key)
            values.append(value)
            field_starts.append(payload)
            field_ends.append(stop)
            going_on = stop < limit
            active = active[going_on]
            position = stop[going_on]
        if not owners:
            empty = np.zeros(0, dtype=np.int64)
            return Fields(empty, empty, empty, np.zeros(0, dtype=np.uint64), empty, empty)
        owner = np.concatenate(owners)
        start = np.concatenate(field_starts)
        order = np.argsort(start, kind="stable")  # fields in file order: by message, in message
        key = np.concatenate(keys)[order]
        number = (key >> np.uint64(3)).astype(np.int64)
        if (number == 0).any():
            raise IrregularWireError("a field numbered 0")
        return Fields(
            owner=owner[order],
            number=number,
            wire=(key & np.uint64(7)).astype(np.int64),
            value=np.concatenate(values)[order],
            start=start[order],
            end=np.concatenate(field_ends)[order],
        )

    def packed_varints(
        self, starts: Int64Array, ends: Int64Array, *, positions: bool = False
    ) -> tuple[UInt64Array, Int64Array, Int64Array | None]:
        """The varints packed in the spans [starts[i], ends[i]): (values, span, start of each).

        Spans must not overlap; values come span by span, in order within each. Where each
        varint starts is given only if asked for (else None).
        """
        nonempty = np.flatnonzero(starts < ends)
        starts, ends = starts[nonempty], ends[nonempty]
        if not len(starts):
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros(0, dtype=np.uint64), empty, empty
        if (self.bytes[ends - 1] >= 0x80).any():
            raise IrregularWireError("packed varints end in a cut varint")
        # The spans' bytes side by side: since each ends a varint, a varint starts one byte
        # after the previous one ends.
        marks = np.zeros(len(self.bytes) + 1, dtype=np.int8)
        marks[starts] = 1
        marks[ends] -= 1
        inside = np.cumsum(marks[:-1], dtype=np.int8).view(np.bool_)
        del marks
        packed = self.bytes[inside]
        lengths = ends - starts
        heads = np.cumsum(lengths) - lengths
        is_last = packed < 0x80
        last = np.flatnonzero(is_last)
        per_span = np.add.reduceat(is_last, heads, dtype=np.int64)
        del is_last
        begin = np.empty(len(last), dtype=np.int64)
        begin[0] = 0
        begin[1:] = last[:-1] + 1
        longest = int((last - begin).max()) + 1
        if longest > _MAX_VARINT_BYTES:
            raise IrregularWireError("a packed varint runs past 10 bytes")
        if longest > 1:
            values = self._combine(packed, begin, last, longest)
        else:
            values = packed[last].astype(np.uint64)
        span = np.repeat(nonempty, per_span)
        return values, span, (np.flatnonzero(inside)[begin] if positions else None)

    @staticmethod
    def _combine(packed: Bytes, begin: Int64Array, last: Int64Array, longest: int) -> UInt64Array:
        # Varints of several bytes: each byte's seven bits, shifted into place. Whole-array
        # steps (a byte past a varint's last counts as 0) beat picking the longer varints out.
        values = (packed[begin] & 0x7F).astype(np.uint64)
        for shift in range(1, longest):
            at = np.minimum(begin + shift, last)
            part = (packed[at] & 0x7F).astype(np.uint64)
            part *= (begin + shift <= last).astype(np.uint64)
            if shift == _MAX_VARINT_BYTES - 1 and (part > 1).any():
                raise IrregularWireError("a packed varint overflows 64 bits")
            values |= part << np.uint64(7 * shift)
        return values
