"""Decoding a pprof profile (gzip-compressed or raw protobuf): the entry point.

The format is `perftools.profiles.Profile` from github.com/google/pprof (proto/profile.proto);
the decoded form is model.Profile (tables as dataclasses, samples as numpy arrays). Two
decoders make it, and decode_body picks:

- decode_upb, upb (protobuf's C runtime) with profile.proto compiled at build time, and numpy
  for the samples: what every well-formed profile goes through, 7 to 8 times less CPU than the
  pure-Python decoder on a 150,000-sample profile (0.25 s against 1.7 s for bench/
  pprof_analysis.py's CPU profile);
- decode_python, the pure-Python decoder, which wins on bad files: when the fast one meets
  anything irregular it takes over and says exactly what is wrong with the file, where, in
  words (or decodes it, for the odd but valid encodings the fast one does not take, such as a
  label field given twice).

Either way the result is the same Profile (tests/unit/test_pprof_decode.py checks it), and
every failure is a ProfileDecodeError; no IndexError, KeyError or MemoryError escapes.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from spikeprof.pprof.model import (
    Function,
    Label,
    Line,
    Location,
    Mapping,
    Profile,
    ProfileDecodeError,
    Sample,
    ValueType,
)

# The model's types, for callers that decode: they come from here with decode().
__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "Function",
    "Label",
    "Line",
    "Location",
    "Mapping",
    "Profile",
    "ProfileDecodeError",
    "Sample",
    "ValueType",
    "decode",
    "decode_body",
    "decode_file",
]

MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
"""Largest protobuf body decoded, after gunzip (and largest file read). A busy Go server's 30 s
CPU profile is a few MiB and even huge heap profiles stay far below this, while the decoded
objects take several times the body's size: past this point a "profile" is a zip bomb or a
mistake, and refusing it keeps the operator's memory, not the profile, the limit."""

GZIP_MAGIC = b"\x1f\x8b"
_INFLATE_CHUNK = 1 << 20  # gunzip output per step: bounds memory while counting a body's size
_KEEP_WHILE_INFLATING = 8 << 20
"""Inflated bytes kept while counting: a body up to this size (a 150,000-sample profile is
6 MiB) is inflated once. A bigger one is counted to the end holding nothing more, then inflated
again, so that a zip bomb is refused without ever holding more than this."""


def decode_body(body: bytes) -> Profile:
    """Decode an uncompressed protobuf body, fast when it is regular, in words when it is bad."""
    # Imported here, as numpy and protobuf: the operator imports this module at start, and
    # should take their memory only once it decodes a profile.
    from spikeprof.pprof import decode_python, decode_upb
    from spikeprof.pprof.wire_arrays import IrregularWireError

    try:
        return decode_upb.decode_body(body)
    except IrregularWireError:
        return decode_python.decode_body(body)


def decode_file(path: Path | str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> Profile:
    """Decode the profile in a file (OSError if it cannot be read, as for any file)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ProfileDecodeError(
            f"{path.name} is {size} bytes, more than the {max_bytes} a profile may have"
        )
    try:
        return decode(path.read_bytes(), max_bytes=max_bytes)
    except ProfileDecodeError as error:
        raise ProfileDecodeError(f"{path.name}: {error}") from None


def decode(data: bytes, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> Profile:
    """Decode a gzip-compressed (as Go serves them) or raw protobuf pprof profile."""
    if not data:
        raise ProfileDecodeError("the profile is empty (0 bytes)")
    if data.startswith(GZIP_MAGIC):
        body = _gunzip(data, max_bytes)
        try:
            return decode_body(body)
        except ProfileDecodeError as error:
            raise ProfileDecodeError(
                f"the gzip'd data is not a valid pprof profile: {error}"
            ) from None
    if len(data) > max_bytes:
        raise ProfileDecodeError(
            f"the profile is {len(data)} bytes, more than the {max_bytes} a profile may have"
        )
    try:
        return decode_body(data)
    except ProfileDecodeError as error:
        raise ProfileDecodeError(
            f"expected a gzip-compressed pprof profile (or a raw protobuf one), "
            f"got {_describe(data)}, which is neither: {error}"
        ) from None


def _describe(data: bytes) -> str:
    head = data[:40]
    if all(32 <= byte < 127 or byte in b"\r\n\t" for byte in head):
        return f"text starting {head.decode('ascii')!r}"
    return f"binary data starting {data[:8].hex()}"


def _gunzip(data: bytes, limit: int) -> bytes:
    # Refuse a zip bomb after inflating it once in 1 MiB steps, never holding it: what is
    # inflated is kept up to _KEEP_WHILE_INFLATING only, and a larger body (rare) is inflated
    # a second time once its size is known to be under the limit.
    kept: list[bytes] = []
    if _inflate(data, limit, keep=kept, keep_limit=_KEEP_WHILE_INFLATING):
        return b"".join(kept)
    kept = []
    _inflate(data, limit, keep=kept, keep_limit=limit)
    return b"".join(kept)


def _inflate(data: bytes, limit: int, keep: list[bytes], keep_limit: int) -> bool:
    # Whether all of the body is in keep (else keep was emptied, past keep_limit).
    total = 0
    rest = data
    while True:  # one gzip member per turn: concatenated members are one stream, as Go reads them
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        while not inflater.eof:
            try:
                out = inflater.decompress(pending, _INFLATE_CHUNK)
            except zlib.error as error:
                # zlib says what it found (bad header, bad checksum...); the cause is the file.
                raise ProfileDecodeError(f"the gzip stream is corrupt ({error})") from None
            pending = inflater.unconsumed_tail
            total += len(out)
            if total > limit:
                raise ProfileDecodeError(
                    f"the profile inflates to more than {limit} bytes, the limit for a profile: "
                    f"{len(data)} compressed bytes that expand so much are a zip bomb or a mistake"
                )
            if total > keep_limit:
                keep.clear()
            elif out:
                keep.append(out)
            if not out and not pending:
                break
        if not inflater.eof:
            raise ProfileDecodeError(
                "the gzip stream is truncated: the file ends before the compressed data does "
                "(was the download cut short?)"
            )
        rest = inflater.unused_data
        if not rest:
            return total <= keep_limit
        if not rest.startswith(GZIP_MAGIC):
            raise ProfileDecodeError(
                f"the gzip stream is followed by {len(rest)} bytes that are not gzip data"
            )
