"""Streaming checks that a file is a gzip-compressed pprof Profile, or a Go execution trace.

A pprof profile is a gzip'd protobuf `perftools.profiles.Profile` (github.com/google/pprof,
proto/profile.proto). The check walks the top-level protobuf fields without building them, so a
64 MiB profile is verified in constant memory, and a body that is HTML, JSON or random bytes is
caught with a message that says what it looked like.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

from spikeprof.errors import SpikeprofError

CHUNK = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"
TRACE_MAGIC = b"go 1."
HEAD_BYTES = 64
# profile.proto field number -> allowed wire types (0 varint, 2 length-delimited).
PROFILE_FIELDS: dict[int, frozenset[int]] = {
    1: frozenset({2}),  # sample_type
    2: frozenset({2}),  # sample
    3: frozenset({2}),  # mapping
    4: frozenset({2}),  # location
    5: frozenset({2}),  # function
    6: frozenset({2}),  # string_table
    7: frozenset({0}),  # drop_frames
    8: frozenset({0}),  # keep_frames
    9: frozenset({0}),  # time_nanos
    10: frozenset({0}),  # duration_nanos
    11: frozenset({2}),  # period_type
    12: frozenset({0}),  # period
    13: frozenset({0, 2}),  # comment (repeated int64, packed or not)
    14: frozenset({0}),  # default_sample_type
    15: frozenset({0}),  # doc_url
}


class NotAProfileError(SpikeprofError, ValueError):
    """The bytes are not the profile they should be; the message says what was found."""


def _describe(head: bytes) -> str:
    text = head[:40]
    if text.lstrip().startswith((b"<", b"{", b"[")) or all(
        32 <= b < 127 or b in b"\r\n\t" for b in text
    ):
        return f"text starting {text.decode('ascii', 'replace')!r}"
    return f"binary data starting {head[:8].hex()}"


class _FieldWalker:
    """Consumes protobuf bytes incrementally, checking keys and skipping values."""

    def __init__(self) -> None:
        self.buffer = b""
        self.skip = 0  # bytes of a length-delimited value still to skip
        self.fields_seen: set[int] = set()

    def feed(self, data: bytes) -> None:
        if self.skip:
            taken = min(self.skip, len(data))
            self.skip -= taken
            data = data[taken:]
        self.buffer += data
        while self.buffer and not self.skip:
            parsed = self._read_varint(0)
            if parsed is None:
                return
            key, pos = parsed
            number, wire = key >> 3, key & 7
            if number not in PROFILE_FIELDS or wire not in PROFILE_FIELDS[number]:
                raise NotAProfileError(
                    f"protobuf field {number} with wire type {wire} is not part of a pprof Profile"
                )
            value = self._read_varint(pos)
            if value is None:
                return
            length, pos = value
            self.fields_seen.add(number)
            if wire == 0:
                self.buffer = self.buffer[pos:]
                continue
            available = len(self.buffer) - pos
            if length <= available:
                self.buffer = self.buffer[pos + length :]
            else:
                self.skip = length - available
                self.buffer = b""

    def _read_varint(self, pos: int) -> tuple[int, int] | None:
        result = 0
        shift = 0
        while pos < len(self.buffer):
            byte = self.buffer[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise NotAProfileError("malformed protobuf: a varint runs past 10 bytes")
        return None

    def finish(self) -> None:
        if self.skip or self.buffer:
            raise NotAProfileError("the profile is truncated: its last protobuf field is cut short")
        if 6 not in self.fields_seen:
            raise NotAProfileError("the protobuf has no string table, so it is not a pprof Profile")


def check_pprof_chunks(chunks: Iterable[bytes]) -> None:
    """Raise NotAProfileError unless the chunks form a gzip'd pprof Profile."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    walker = _FieldWalker()
    head = b""  # the first bytes, gathered whatever the chunking, to judge what the body is
    judged = False
    for chunk in chunks:
        if not judged:
            head += chunk
            if len(head) < HEAD_BYTES:
                continue
            _judge_head(head)
            judged = True
            chunk, head = head, b""
        _feed(decompressor, walker, chunk)
    if not judged:
        if not head:
            raise NotAProfileError("the body is empty")
        _judge_head(head)
        _feed(decompressor, walker, head)
    if not decompressor.eof:
        raise NotAProfileError("the gzip stream is truncated")
    walker.finish()


def _judge_head(head: bytes) -> None:
    if not head.startswith(GZIP_MAGIC):
        raise NotAProfileError(f"expected a gzip-compressed pprof profile, got {_describe(head)}")


def _feed(decompressor: zlib._Decompress, walker: _FieldWalker, chunk: bytes) -> None:
    try:
        walker.feed(decompressor.decompress(chunk))
        while decompressor.unconsumed_tail:
            walker.feed(decompressor.decompress(decompressor.unconsumed_tail))
    except zlib.error as error:
        raise NotAProfileError(f"the gzip stream is corrupt: {error}") from None


def check_trace_head(head: bytes) -> None:
    if not head.startswith(TRACE_MAGIC):
        raise NotAProfileError(f"expected a Go execution trace, got {_describe(head)}")


def _file_chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def check_file(path: Path, *, trace: bool) -> None:
    if trace:
        with path.open("rb") as handle:
            check_trace_head(handle.read(64))
        return
    check_pprof_chunks(_file_chunks(path))
