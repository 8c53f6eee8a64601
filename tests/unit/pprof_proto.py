"""Writing small pprof profiles byte by byte, so tests choose every encoding detail.

Real profiles (from Go's runtime and github.com/google/pprof) are covered by the integration
tests; these hand-made ones reach what Go never writes: unpacked fields, odd field orders,
nameless frames, hostile names, and every kind of broken file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

VARINT, LENGTH_DELIMITED = 0, 2


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64s go on the wire as their two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def scalar(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(value)


def message(number: int, payload: bytes) -> bytes:
    return key(number, LENGTH_DELIMITED) + varint(len(payload)) + payload


def repeated(number: int, values: Iterable[int], *, packed: bool) -> bytes:
    values = list(values)
    if packed:
        return message(number, b"".join(varint(v) for v in values))
    return b"".join(scalar(number, v) for v in values)


@dataclass
class ProfileBuilder:
    """Collects a Profile's parts; build() writes them in the order Go's encoder does."""

    strings: list[str] = field(default_factory=lambda: [""])
    sample_types: list[bytes] = field(default_factory=list)
    samples: list[bytes] = field(default_factory=list)
    mappings: list[bytes] = field(default_factory=list)
    locations: list[bytes] = field(default_factory=list)
    functions: list[bytes] = field(default_factory=list)
    scalars: list[bytes] = field(default_factory=list)

    def string(self, text: str) -> int:
        if text not in self.strings:
            self.strings.append(text)
        return self.strings.index(text)

    def sample_type(self, type_: str, unit: str) -> ProfileBuilder:
        self.sample_types.append(scalar(1, self.string(type_)) + scalar(2, self.string(unit)))
        return self

    def mapping(self, id_: int, filename: str, build_id: str = "") -> ProfileBuilder:
        self.mappings.append(
            scalar(1, id_)
            + scalar(2, 0x400000)
            + scalar(3, 0x800000)
            + scalar(5, self.string(filename))
            + (scalar(6, self.string(build_id)) if build_id else b"")
            + scalar(7, 1)
        )
        return self

    def function(self, id_: int, name: str, *, start_line: int = 0) -> ProfileBuilder:
        self.functions.append(
            scalar(1, id_)
            + scalar(2, self.string(name))
            + scalar(3, self.string(name))
            + scalar(4, self.string(f"/src/{id_}.go"))
            + scalar(5, start_line)
        )
        return self

    def location(
        self,
        id_: int,
        function_ids: Sequence[int],
        *,
        mapping_id: int = 0,
    ) -> ProfileBuilder:
        """A location whose lines call the functions given, innermost (inlined) first."""
        lines = b"".join(
            message(4, scalar(1, function_id) + scalar(2, 10 + n))
            for n, function_id in enumerate(function_ids)
        )
        self.locations.append(
            scalar(1, id_)
            + (scalar(2, mapping_id) if mapping_id else b"")
            + scalar(3, 0x401000 + 16 * id_)
            + lines
        )
        return self

    def sample(
        self,
        location_ids: Sequence[int],
        values: Sequence[int],
        *,
        packed: bool = True,
        labels: Sequence[tuple[str, str | int]] = (),
    ) -> ProfileBuilder:
        """A sample with its stack leaf first, as profiles store it."""
        label_bytes = b""
        for label_key, value in labels:
            if isinstance(value, str):
                body = scalar(1, self.string(label_key)) + scalar(2, self.string(value))
            else:
                body = scalar(1, self.string(label_key)) + scalar(3, value)
            label_bytes += message(3, body)
        self.samples.append(
            repeated(1, location_ids, packed=packed)
            + repeated(2, values, packed=packed)
            + label_bytes
        )
        return self

    def scalar_field(self, number: int, value: int) -> ProfileBuilder:
        self.scalars.append(scalar(number, value))
        return self

    def default_sample_type(self, type_: str) -> ProfileBuilder:
        return self.scalar_field(14, self.string(type_))

    def body(self) -> bytes:
        return (
            b"".join(message(1, part) for part in self.sample_types)
            + b"".join(message(2, part) for part in self.samples)
            + b"".join(message(3, part) for part in self.mappings)
            + b"".join(message(4, part) for part in self.locations)
            + b"".join(message(5, part) for part in self.functions)
            + b"".join(message(6, text.encode()) for text in self.strings)
            + b"".join(self.scalars)
        )

    def gzipped(self) -> bytes:
        return gzip.compress(self.body())


def call_chain(builder: ProfileBuilder, names: Sequence[str]) -> ProfileBuilder:
    """Functions and locations 1..n, one per name, each location calling its function."""
    for number, name in enumerate(names, start=1):
        builder.function(number, name).location(number, [number])
    return builder
