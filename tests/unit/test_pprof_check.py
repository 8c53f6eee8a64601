"""The profile check tells a pprof profile from junk, in constant memory, and says what it saw."""

from __future__ import annotations

import gzip
import os

import pytest

from spikeprof.pprof.check import NotAProfileError, check_pprof_chunks, check_trace_head

# A minimal Profile: sample_type {type: 1, unit: 2}, string_table ["", "cpu", "ns"].
MINIMAL = bytes([0x0A, 0x04, 0x08, 0x01, 0x10, 0x02]) + b"\x32\x00\x32\x03cpu\x32\x02ns"


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 64, 1 << 16])
def test_a_gzipped_profile_passes_however_it_is_chunked(size: int) -> None:
    check_pprof_chunks(chunks(gzip.compress(MINIMAL), size))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b"<html><body>Not Found</body></html>", "got text starting '<html><body>Not Found"),
        (
            os.urandom(64).replace(b"\x1f", b"\x00"),
            "expected a gzip-compressed pprof profile, got binary data starting",
        ),
        (gzip.compress(MINIMAL)[:-12], "truncated"),
        (gzip.compress(b'{"json": true}'), "is not part of a pprof Profile"),
        (gzip.compress(MINIMAL[:-2]), "cut short"),
        (gzip.compress(bytes([0x0A, 0x00])), "no string table"),
        (b"\x1f\x8b" + os.urandom(200), "gzip stream is corrupt"),
    ],
    ids=["empty", "html", "random", "truncated", "json", "cut-field", "no-strings", "bad-gzip"],
)
def test_junk_is_refused_with_what_it_looked_like(body: bytes, message: str) -> None:
    with pytest.raises(NotAProfileError, match=message):
        check_pprof_chunks(chunks(body, 7) if body else [])


def test_a_huge_length_prefix_is_caught_without_allocating_it() -> None:
    # Field 2 (sample) claiming 2**40 bytes that never come.
    body = gzip.compress(bytes([0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]))
    with pytest.raises(NotAProfileError, match="truncated"):
        check_pprof_chunks([body])


def test_go_execution_traces_are_recognised_by_their_header() -> None:
    check_trace_head(b"go 1.23 trace\x00\x00\x00")
    with pytest.raises(NotAProfileError, match="expected a Go execution trace"):
        check_trace_head(b"\x1f\x8b\x08")
