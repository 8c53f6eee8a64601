"""Summaries count flat and cum as `go tool pprof -top` does, and print its figures the same way."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from spikeprof.pprof import summary as summary_module
from spikeprof.pprof import units
from spikeprof.pprof.frames import frame_table
from spikeprof.pprof.profile import Profile, decode
from spikeprof.pprof.summary import analyze_file, render_top, summarize
from tests.unit.pprof_proto import ProfileBuilder, call_chain


def goroutine_profile() -> ProfileBuilder:
    builder = ProfileBuilder().sample_type("goroutine", "count")
    call_chain(
        builder,
        ["runtime.goexit", "main.main", "main.work", "main.recurse", "main.leaf", "main.inlined"],
    )
    builder.location(7, [6, 3])  # main.inlined inlined into main.work: innermost line first
    builder.sample([5, 4, 4, 3, 2, 1], [10])  # recursion: main.recurse twice in one stack
    builder.sample([7, 2, 1], [4])
    builder.sample([3, 2, 1], [1])
    builder.sample([], [2])  # no stack: part of the total, charged to no function
    return builder


def test_flat_goes_to_the_leaf_and_cum_counts_each_sample_once() -> None:
    summary = summarize(decode(goroutine_profile().body())).default
    rows = [(row.function, row.flat, row.cum) for row in summary.functions]
    assert summary.total == 17
    assert rows == [
        ("main.leaf", 10, 10),
        ("main.inlined", 4, 4),  # an inlined call is a frame of its own, and here the leaf
        ("main.work", 1, 15),
        ("main.main", 0, 15),
        ("main.recurse", 0, 10),  # in the first stack twice, counted once
        ("runtime.goexit", 0, 15),
    ]


def test_rows_are_ordered_by_flat_then_name_then_cum_as_pprof_orders_them() -> None:
    builder = ProfileBuilder().sample_type("samples", "count")
    call_chain(builder, ["root", "b.two", "a.one", "c.three"])
    builder.sample([2, 1], [3]).sample([3, 1], [3]).sample([4, 3, 1], [1]).sample([4, 1], [-2])
    rows = [
        (row.function, row.flat, row.cum)
        for row in summarize(decode(builder.body())).default.functions
    ]
    assert rows == [
        ("a.one", 3, 4),
        ("b.two", 3, 3),
        ("c.three", -1, -1),
        ("root", 0, 5),
    ]


def test_frames_without_a_function_name_are_named_after_their_binary() -> None:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    builder.mapping(1, "/usr/local/bin/checkout").mapping(2, "/lib/x86_64-linux-gnu/libc.so.6")
    builder.function(1, "main.main").location(1, [1], mapping_id=1)
    builder.function(2, "", start_line=40).location(2, [2], mapping_id=1)
    builder.locations.append(b"\x08\x03\x10\x02")  # location 3 in libc: no lines at all
    builder.locations.append(b"\x08\x04")  # location 4: no mapping, no lines
    builder.sample([3, 2, 1], [5]).sample([4, 1], [1])
    rows = [
        (row.function, row.flat, row.cum)
        for row in summarize(decode(builder.body())).default.functions
    ]
    assert rows == [
        ("[libc.so.6]", 5, 5),
        ("<unknown>", 1, 1),
        ("[checkout]", 0, 5),
        ("main.main", 0, 6),
    ]


def test_every_sample_type_is_summarised_and_the_default_is_pprofs() -> None:
    builder = ProfileBuilder()
    for type_, unit in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]:
        builder.sample_type(type_, unit)
    call_chain(builder, ["main.main", "main.holdMemory"])
    builder.sample([2, 1], [4, 4096, 1, 1024]).sample([1], [1, 512, 0, 0])
    summary = summarize(decode(builder.body()))
    assert summary.default.sample_type.type == "inuse_space"
    assert [(s.sample_type.type, s.total) for s in summary.sample_types] == [
        ("alloc_objects", 5),
        ("alloc_space", 4608),
        ("inuse_objects", 1),
        ("inuse_space", 1024),
    ]
    assert [(row.function, row.flat, row.cum) for row in summary.default.functions] == [
        ("main.holdMemory", 1024, 1024),
        ("main.main", 0, 1024),
    ]


def test_the_json_form_has_the_top_rows_of_each_sample_type_with_percentages() -> None:
    as_json = summarize(decode(goroutine_profile().body())).to_json(top=2)
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json == {
        "defaultSampleType": "goroutine",
        "sampleTypes": [
            {
                "type": "goroutine",
                "unit": "count",
                "total": 17,
                "functionCount": 6,
                "functions": [
                    {
                        "function": "main.leaf",
                        "flat": 10,
                        "flatPercent": 58.82,
                        "cum": 10,
                        "cumPercent": 58.82,
                    },
                    {
                        "function": "main.inlined",
                        "flat": 4,
                        "flatPercent": 23.53,
                        "cum": 4,
                        "cumPercent": 23.53,
                    },
                ],
            }
        ],
    }


def test_analyze_file_summarises_a_profile_file_for_metadata(tmp_path: Path) -> None:
    path = tmp_path / "goroutine.pb.gz"
    path.write_bytes(goroutine_profile().gzipped())
    assert analyze_file(path, top=20) == summarize(decode(goroutine_profile().body())).to_json(20)
    assert len(analyze_file(path, top=1)["sampleTypes"][0]["functions"]) == 1


def test_the_text_report_reads_like_go_tool_pprof_top() -> None:
    report = render_top(decode(goroutine_profile().body()))
    assert report == (
        "Type: goroutine\n"
        "Showing nodes accounting for 15, 88.24% of 17 total\n"
        "      flat  flat%   sum%        cum   cum%\n"
        "        10 58.82% 58.82%         10 58.82%  main.leaf\n"
        "         4 23.53% 82.35%          4 23.53%  main.inlined (inline)\n"
        "         1  5.88% 88.24%         15 88.24%  main.work\n"
        "         0     0% 88.24%         15 88.24%  main.main\n"
        "         0     0% 88.24%         10 58.82%  main.recurse\n"
        "         0     0% 88.24%         15 88.24%  runtime.goexit\n"
    )
    top_two = render_top(decode(goroutine_profile().body()), top=2)
    assert (
        "Showing nodes accounting for 14, 82.35% of 17 total\nShowing top 2 nodes out of 6\n"
        in top_two
    )
    # pprof links only the functions it shows: main.work, which main.inlined was inlined into,
    # is not among the top two, so main.inlined loses its mark.
    assert top_two.endswith("  main.inlined\n")


@pytest.mark.parametrize(
    ("value", "unit", "to_unit", "label"),
    [
        (1_900_000_000, "nanoseconds", "auto", "1.90s"),
        (10_000_000, "nanoseconds", "s", "0.01s"),
        (910_000_000, "nanoseconds", "ns", "910000000ns"),
        (7_200_000_000_000, "nanoseconds", "auto", "2hrs"),
        (30_317_416, "bytes", "auto", "28.91MB"),
        (1536, "bytes", "auto", "1.50kB"),
        (524_288, "Bytes", "B", "524288B"),
        (0, "bytes", "auto", "0"),
        (-2048, "bytes", "auto", "-2kB"),
        (502, "count", "count", "502"),
        (502, "", "count", "502"),
    ],
)
def test_values_are_scaled_and_printed_as_pprof_prints_them(
    value: int, unit: str, to_unit: str, label: str
) -> None:
    assert units.scaled_label(value, unit, to_unit) == label


@pytest.mark.parametrize(
    ("value", "total", "text"),
    [
        (1, 1, "  100%"),
        (1, 3, "33.33%"),
        (1, 200, "  0.5%"),
        (7, 50_000, "0.014%"),
        (0, 17, "    0%"),
        (5, 0, "    0%"),
    ],
)
def test_percentages_keep_two_significant_digits_as_pprof_prints_them(
    value: int, total: int, text: str
) -> None:
    assert units.percentage(value, total) == text


def test_the_report_unit_is_the_one_pprofs_minimum_picks() -> None:
    # 10 ms samples of a 1.9 s total print as 0.01s, not 10ms: pprof's "100 x smallest" rule.
    assert units.output_unit("nanoseconds", 10_000_000, 1_900_000_000) == "s"
    assert units.output_unit("nanoseconds", 10_000_000, 50_000_000) == "ms"
    assert units.output_unit("bytes", 1024, 30_317_416) == "kB"  # 100 x 1 kB is still kB
    assert units.output_unit("bytes", 1 << 20, 300 << 20) == "MB"
    assert units.output_unit("count", 1, 506) == "count"


def summed_by_hand(profile: Profile, index: int) -> dict[str, tuple[int, int]]:
    """flat and cum by function name, the slow way: sample by sample, frame by frame (the
    "huge" profile's sums pass 2**53, where float64 would round them, and stay under 2**63)."""
    table = frame_table(profile)
    costs: dict[str, list[int]] = {}
    for sample in profile.samples:
        value = sample.values[index]
        frames = [f for location in sample.location_ids for f in table.by_location[location]]
        if not frames:
            continue
        costs.setdefault(table.names[frames[0]], [0, 0])[0] += value
        for frame in set(frames):
            costs.setdefault(table.names[frame], [0, 0])[1] += value
    return {name: (flat, cum) for name, (flat, cum) in costs.items() if flat or cum}


def random_profile(seed: int, samples: int, *, huge: bool = False) -> Profile:
    rng = random.Random(seed)
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("space", "bytes")
    for number in range(1, 31):
        builder.function(number, f"pkg{number % 5}.fn{number}")
    for location in range(1, 51):  # some with inlined frames, some sharing functions
        builder.location(location, rng.sample(range(1, 31), rng.choice([1, 1, 2, 3])))
    for _ in range(samples):
        stack = [rng.randint(1, 50) for _ in range(rng.randint(0, 14))]  # recursion too
        count = rng.choice([0, 1, 2, -1, 5])
        size = count * (rng.randint(1 << 48, 1 << 49) if huge else rng.randint(1, 1 << 20))
        builder.sample(stack, [count, size])
    return decode(builder.body())


@pytest.mark.parametrize("huge", [False, True], ids=["float64 sums", "int64 sums"])
def test_flat_and_cum_equal_a_sample_by_sample_count_in_any_number_of_steps(
    huge: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = random_profile(seed=11, samples=600, huge=huge)
    expected = [summed_by_hand(profile, index) for index in range(2)]
    for per_step in (1 << 18, 7, 1):  # one step; several; a sample or more per step
        monkeypatch.setattr(summary_module, "STACK_ENTRIES_PER_STEP", per_step)
        result = summarize(profile)
        for index, by_type in enumerate(result.sample_types):
            assert {row.function: (row.flat, row.cum) for row in by_type.functions} == expected[
                index
            ]
            assert by_type.total == sum(abs(s.values[index]) for s in profile.samples)
