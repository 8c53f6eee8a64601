"""The decoder reads pprof profiles however they are encoded, and refuses bad ones in words.

Both decoders are held to it: the fast one (decode_upb) on every good profile, the pure-Python
one (decode_python) on the bad ones it takes over, and the two agree wherever both decode."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from pathlib import Path

import pytest

from spikeprof.pprof import decode_python, decode_upb
from spikeprof.pprof import profile as pprof_profile
from spikeprof.pprof.profile import ProfileDecodeError, decode, decode_file
from spikeprof.pprof.wire_arrays import IrregularWireError
from tests.unit.pprof_proto import (
    ProfileBuilder,
    call_chain,
    key,
    message,
    scalar,
    varint,
)


def cpu_profile(*, packed: bool = True) -> ProfileBuilder:
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    builder.mapping(1, "/usr/local/bin/checkout", build_id="abc123")
    call_chain(builder, ["runtime.goexit", "main.main", "main.burnCPU"])
    builder.location(4, [3, 2], mapping_id=1)  # burnCPU inlined into main.main
    builder.sample([3, 2, 1], [5, 50_000_000], packed=packed, labels=[("handler", "checkout")])
    builder.sample([4, 1], [1, 10_000_000], packed=packed, labels=[("bytes", 4096)])
    builder.scalar_field(9, 1_700_000_000_000_000_000).scalar_field(10, 2_000_000_000)
    builder.scalar_field(12, 10_000_000)
    return builder


def test_a_gzipped_profile_decodes_into_its_resolved_tables() -> None:
    decoded = decode(cpu_profile().gzipped())

    assert [(t.type, t.unit) for t in decoded.sample_types] == [
        ("samples", "count"),
        ("cpu", "nanoseconds"),
    ]
    assert [s.location_ids for s in decoded.samples] == [(3, 2, 1), (4, 1)]
    assert [s.values for s in decoded.samples] == [(5, 50_000_000), (1, 10_000_000)]
    first_labels, second_labels = (s.labels for s in decoded.samples)
    assert [(label.key, label.text, label.number) for label in first_labels] == [
        ("handler", "checkout", None)
    ]
    assert [(label.key, label.text, label.number) for label in second_labels] == [
        ("bytes", None, 4096)
    ]
    assert decoded.functions[3].name == "main.burnCPU"
    assert decoded.functions[3].filename == "/src/3.go"
    assert [line.function_id for line in decoded.locations[4].lines] == [3, 2]
    assert decoded.locations[4].mapping_id == 1
    assert decoded.main_mapping is not None
    assert decoded.main_mapping.filename == "/usr/local/bin/checkout"
    assert decoded.main_mapping.build_id == "abc123"
    assert decoded.main_mapping.has_functions
    assert (decoded.time_nanos, decoded.duration_nanos, decoded.period) == (
        1_700_000_000_000_000_000,
        2_000_000_000,
        10_000_000,
    )


def test_packed_and_unpacked_repeated_fields_decode_alike() -> None:
    assert decode(cpu_profile(packed=False).body()) == decode(cpu_profile(packed=True).body())


def test_a_raw_protobuf_profile_decodes_as_well_as_a_gzipped_one() -> None:
    builder = cpu_profile()
    assert decode(builder.body()) == decode(builder.gzipped())


def test_concatenated_gzip_members_read_as_one_stream_as_go_reads_them() -> None:
    body = cpu_profile().body()
    split = len(body) // 2
    assert decode(gzip.compress(body[:split]) + gzip.compress(body[split:])) == decode(body)


def test_negative_and_large_values_decode_as_int64() -> None:
    builder = ProfileBuilder().sample_type("delta", "bytes")
    call_chain(builder, ["main.f"])
    builder.sample([1], [-4096]).sample([1], [(1 << 62) + 1], packed=False)
    assert [s.values for s in decode(builder.body()).samples] == [(-4096,), ((1 << 62) + 1,)]


def test_fields_a_newer_profile_proto_adds_are_skipped() -> None:
    body = cpu_profile().body()
    newer = (
        body
        + message(16, scalar(1, 7))  # label_set
        + key(17, 1)
        + b"\x00" * 8  # a fixed64 field
        + key(18, 5)
        + b"\x00" * 4  # a fixed32 field
    )
    assert decode(newer) == decode(body)


def test_the_default_sample_type_is_the_one_go_tool_pprof_shows() -> None:
    heap = ProfileBuilder()
    for type_, unit in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]:
        heap.sample_type(type_, unit)
    as_heap = decode(heap.body())
    assert as_heap.sample_types[as_heap.sample_type_index()].type == "inuse_space"  # the last
    as_allocs = decode(heap.default_sample_type("alloc_space").body())
    assert as_allocs.default_sample_type == "alloc_space"
    assert as_allocs.sample_types[as_allocs.sample_type_index()].type == "alloc_space"
    assert as_allocs.sample_type_index("inuse_objects") == 2
    legacy = decode(ProfileBuilder().sample_type("space", "bytes").body())
    assert legacy.sample_type_index("inuse_space") == 0  # pprof's legacy "inuse_" names
    with pytest.raises(ValueError, match="no sample type 'cpu'; it has alloc_objects, alloc_space"):
        as_allocs.sample_type_index("cpu")


def test_a_file_is_decoded_and_named_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "cpu.pb.gz"
    good.write_bytes(cpu_profile().gzipped())
    assert decode_file(good) == decode(cpu_profile().body())
    bad = tmp_path / "heap.pb.gz"
    bad.write_bytes(b"<html>Not Found</html>")
    with pytest.raises(ProfileDecodeError, match=r"^heap\.pb\.gz: expected a gzip-compressed"):
        decode_file(bad)


def _without(builder: ProfileBuilder, part: str) -> bytes:
    setattr(builder, part, [])
    return builder.body()


def _sample_without_its_location() -> bytes:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    call_chain(builder, ["main.main"]).sample([1, 7], [1])
    return builder.body()


def _location_without_its_function() -> bytes:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    builder.function(1, "main.main").location(1, [1, 9]).sample([1], [1])
    return builder.body()


def _location_without_its_mapping() -> bytes:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    builder.function(1, "main.main").location(1, [1], mapping_id=3).sample([1], [1])
    return builder.body()


def _duplicated_location() -> bytes:
    builder = call_chain(ProfileBuilder().sample_type("cpu", "nanoseconds"), ["main.main"])
    builder.location(1, [1])
    return builder.body()


RANDOM_BYTES = random.Random(7).randbytes(256).replace(b"\x1f\x8b", b"\x00\x00")

BAD_PROFILES = [
    ("empty", b"", "the profile is empty"),
    (
        "html",
        b"<html><body>404 page not found</body></html>",
        "got text starting '<html><body>404 page not found",
    ),
    (
        "random bytes",
        RANDOM_BYTES,
        "expected a gzip-compressed pprof profile .or a raw protobuf one., got binary data "
        f"starting {RANDOM_BYTES[:8].hex()}, which is neither",
    ),
    ("truncated gzip", cpu_profile().gzipped()[:-20], "the gzip stream is truncated"),
    ("corrupt gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 60, "the gzip stream is corrupt"),
    (
        "junk after gzip",
        cpu_profile().gzipped() + b"trailing junk",
        "followed by 13 bytes that are not gzip data",
    ),
    (
        "length past the end",
        gzip.compress(message(2, b"\x0a\x01\x01")[:-1] + b""),
        "field 2 of the profile, at byte 2, claims 3 bytes, but only 2 remain",
    ),
    (
        "huge length",
        gzip.compress(key(6, 2) + varint(1 << 62) + b"abc"),
        f"field 6 of the profile, at byte 10, claims {1 << 62} bytes, but only 3 remain",
    ),
    (
        "cut varint",
        gzip.compress(key(9, 0) + b"\x80\x80"),
        "a varint at byte 3 is cut off by the end of its message",
    ),
    (
        "eleven-byte varint",
        gzip.compress(key(9, 0) + b"\xff" * 10 + b"\x01"),
        "runs past 10 bytes",
    ),
    ("group", gzip.compress(key(2, 3)), r"field 2 with wire type 3 \(a group start\)"),
    ("field zero", gzip.compress(b"\x00\x00"), "a field numbered 0"),
    (
        "wrong wire type",
        gzip.compress(scalar(2, 5)),
        r"field 2 \(sample\) of the profile has wire type 0, not length-delimited",
    ),
    ("no string table", _without(cpu_profile(), "strings"), "has no string table"),
    (
        "string table not starting empty",
        gzip.compress(message(6, b"cpu")),
        "must start with an empty string, not 'cpu'",
    ),
    (
        "string out of range",
        gzip.compress(message(1, scalar(1, 9)) + message(6, b"")),
        "refers to string 9, but the string table has 1 entries",
    ),
    (
        "missing location",
        _sample_without_its_location(),
        "sample 0 refers to location 7, which the profile does not define",
    ),
    (
        "missing function",
        _location_without_its_function(),
        "location 1 has a line in function 9, which the profile does not define",
    ),
    (
        "missing mapping",
        _location_without_its_mapping(),
        "location 1 refers to mapping 3, which the profile does not define",
    ),
    ("duplicated location", _duplicated_location(), "defines location 1 twice"),
    (
        "values per sample",
        ProfileBuilder().sample_type("cpu", "nanoseconds").sample([], [1, 2]).body(),
        "sample 0 has 2 values, but the profile has 1 sample types",
    ),
    (
        "samples without types",
        ProfileBuilder().sample([], []).body(),
        "has samples but no sample types",
    ),
]


@pytest.mark.parametrize(
    ("data", "message_"),
    [(data, message_) for _, data, message_ in BAD_PROFILES],
    ids=[name for name, _, _ in BAD_PROFILES],
)
def test_a_bad_profile_is_refused_with_a_message_that_says_what_is_wrong(
    data: bytes, message_: str
) -> None:
    with pytest.raises(ProfileDecodeError, match=message_):
        decode(data)


def _zip_bomb(inflated_size: int) -> bytes:
    # A string-table entry claiming `inflated_size` bytes, all "a": a valid-looking protobuf
    # that compresses about 1000 to 1. Its body is one gzip member of 1 MiB repeated, which
    # gzip readers (Go's and ours) take as one stream, so the test builds it in no time.
    header = gzip.compress(key(6, 2) + varint(inflated_size))
    mebibyte = gzip.compress(b"a" * (1 << 20), compresslevel=9)
    return header + mebibyte * (inflated_size >> 20)


def test_a_zip_bomb_is_refused_without_holding_what_it_inflates_to() -> None:
    bomb = _zip_bomb(pprof_profile.MAX_DECOMPRESSED_BYTES + (16 << 20))
    assert len(bomb) < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ProfileDecodeError, match="inflates to more than 536870912 bytes"):
            decode(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"decoding the bomb held {peak} bytes at its peak"


def test_a_body_over_the_limit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    body = cpu_profile().body()
    with pytest.raises(ProfileDecodeError, match=f"the profile is {len(body)} bytes, more than"):
        decode(body, max_bytes=len(body) - 1)
    with pytest.raises(ProfileDecodeError, match="inflates to more than 10 bytes"):
        decode(gzip.compress(body), max_bytes=10)
    big = tmp_path / "cpu.pb.gz"
    big.write_bytes(gzip.compress(body))
    with pytest.raises(ProfileDecodeError, match=r"cpu\.pb\.gz is \d+ bytes, more than the 10"):
        decode_file(big, max_bytes=10)


def test_no_mangling_of_a_good_profile_raises_anything_but_the_clear_error() -> None:
    # Flipped bytes, cut ends and spliced garbage, as a fuzzer would make them: each either
    # still decodes or raises ProfileDecodeError, never IndexError, KeyError or the like.
    rng = random.Random(1)
    good = cpu_profile().body()
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            position = rng.randrange(len(data))
            if choice < 0.6:
                data[position] = rng.randrange(256)
            elif choice < 0.8:
                del data[position:]
            else:
                data[position:position] = rng.randbytes(rng.randint(1, 12))
            if not data:
                data = bytearray(b"\x0a")
        try:
            decode(bytes(data))
            outcomes["decoded"] += 1
        except ProfileDecodeError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 0 and outcomes["refused"] > 0


def test_well_formed_profiles_take_the_fast_path_and_decode_as_the_pure_python_one() -> None:
    for body in (
        cpu_profile().body(),
        cpu_profile(packed=False).body(),
        _mixed_encodings().body(),
        ProfileBuilder().body(),  # nothing but an empty string table
        cpu_profile().body() + message(6, b"\xffnot utf-8"),  # Go's pprof reads it too
    ):
        assert decode_upb.decode_body(body) == decode_python.decode_body(body)
    assert decode(cpu_profile().body() + message(6, b"\xffx")).strings[-1] == "\ufffdx"


def _mixed_encodings() -> ProfileBuilder:
    # Packed and unpacked samples side by side, ids past one byte, values past 2**63 - 1 as
    # two's complement, a sample without a stack, labels on some samples only.
    builder = ProfileBuilder().sample_type("alloc", "count").sample_type("space", "bytes")
    call_chain(builder, ["main.main", "main.f", "main.g"])
    builder.location(300, [2, 1]).location(1 << 40, [3])  # ids of 2 and 6 bytes
    builder.sample([1 << 40, 300, 1], [1, 1 << 40], labels=[("bytes", 1 << 40)])
    builder.sample([2, 300], [-1, -(1 << 62)], packed=False)
    builder.sample([], [0, 0], labels=[("a", "x"), ("b", 7)])
    builder.sample([3] * 40, [3, 12])
    return builder


def test_samples_decode_alike_in_any_number_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _mixed_encodings().body()
    whole = decode_python.decode_body(body)
    for per_step in (1, 7, 64):  # a sample per step, or several
        monkeypatch.setattr(decode_upb, "SAMPLE_BYTES_PER_STEP", per_step)
        assert decode_upb.decode_body(body) == whole


def test_on_mangled_profiles_the_fast_decoder_agrees_or_hands_over() -> None:
    # Whatever the fast decoder accepts, the pure-Python one decodes to the same profile;
    # anything else it hands over (IrregularWireError), never decoding it differently.
    rng = random.Random(2)
    good = _mixed_encodings().body()
    handed_over = 0
    for _ in range(600):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(data))
            if rng.random() < 0.8:
                data[position] = rng.randrange(256)
            else:
                del data[position:]
            if not data:
                data = bytearray(b"\x0a")
        try:
            fast = decode_upb.decode_body(bytes(data))
        except IrregularWireError:
            handed_over += 1
            continue
        assert fast == decode_python.decode_body(bytes(data)), bytes(data).hex()
    assert 0 < handed_over < 600
