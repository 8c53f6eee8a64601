"""Flame graphs merge identical stacks, cut what is too thin to see, and make one safe HTML file."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from spikeprof.pprof import flamegraph_page
from spikeprof.pprof.flamegraph import FlameGraph, build_flamegraph
from spikeprof.pprof.flamegraph_page import render_flamegraph
from spikeprof.pprof.frames import frame_table
from spikeprof.pprof.profile import Profile, decode
from tests.unit.pprof_proto import ProfileBuilder, call_chain


def paths(graph: FlameGraph) -> Counter[tuple[str, ...]]:
    """Each frame as its path of names from the root, with its value."""
    widths: Counter[tuple[str, ...]] = Counter()
    stack: list[str] = []
    for name, depth, value in graph.frames:
        del stack[depth:]
        stack.append(graph.names[name])
        widths[tuple(stack)] += value
    return widths


def merged_by_hand(profile: Profile, index: int) -> Counter[tuple[str, ...]]:
    """The flame graph's definition, the slow way: every prefix of every stack, summed."""
    table = frame_table(profile)
    widths: Counter[tuple[str, ...]] = Counter()
    for sample in profile.samples:
        value = sample.values[index]
        if value <= 0:
            continue
        names = ["all"]
        widths[tuple(names)] += value
        for location_id in reversed(sample.location_ids):
            for frame in reversed(table.by_location[location_id]):
                names.append(table.names[frame])
                widths[tuple(names)] += value
    return widths


def test_identical_stacks_merge_and_siblings_come_in_name_order() -> None:
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    call_chain(builder, ["runtime.goexit", "main.main", "main.zeta", "main.alpha"])
    builder.sample([3, 2, 1], [1, 30], labels=[("handler", "a")])
    builder.sample([3, 2, 1], [1, 20], labels=[("handler", "b")])  # same stack, other label
    builder.sample([4, 2, 1], [1, 10]).sample([2, 1], [1, 5])
    graph = build_flamegraph(decode(builder.body()))
    assert graph.sample_type.type == "cpu"
    assert graph.total == 65
    assert [(graph.names[name], depth, value) for name, depth, value in graph.frames] == [
        ("all", 0, 65),
        ("runtime.goexit", 1, 65),
        ("main.main", 2, 65),
        ("main.alpha", 3, 10),
        ("main.zeta", 3, 50),
    ]
    assert graph.dropped_frames == 0


def test_inlined_calls_are_frames_of_their_own_with_the_caller_above() -> None:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    builder.function(1, "main.main").function(2, "main.inlined").location(1, [2, 1])
    builder.sample([1], [7])
    graph = build_flamegraph(decode(builder.body()))
    assert paths(graph) == Counter(
        {("all",): 7, ("all", "main.main"): 7, ("all", "main.main", "main.inlined"): 7}
    )


def random_profile(seed: int, samples: int) -> Profile:
    rng = random.Random(seed)
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    names = [f"pkg{n % 7}.fn{n}" for n in range(1, 41)]
    for number, name in enumerate(names, start=1):
        builder.function(number, name)
    for location in range(1, 61):  # some locations with inlined frames, some sharing functions
        builder.location(location, rng.sample(range(1, 41), rng.choice([1, 1, 1, 2, 3])))
    for _ in range(samples):
        stack = [rng.randint(1, 12) for _ in range(rng.randint(1, 4))]
        stack += [rng.randint(13, 60) for _ in range(rng.randint(0, 12))]
        count = rng.choice([0, 1, 1, 2, 3, 8])
        builder.sample(stack[::-1], [count, count * 10_000_000])
    return decode(builder.body())


def test_every_frame_is_as_wide_as_the_stacks_through_it() -> None:
    profile = random_profile(seed=3, samples=800)
    graph = build_flamegraph(profile, min_fraction=0)
    assert paths(graph) == merged_by_hand(profile, index=1)
    assert graph.dropped_frames == 0


def test_frames_too_thin_to_see_are_cut_and_counted() -> None:
    profile = random_profile(seed=4, samples=800)
    everything = merged_by_hand(profile, index=1)
    graph = build_flamegraph(profile, min_fraction=0.01)
    kept = paths(graph)
    cutoff = graph.total * 0.01
    assert kept == Counter({path: width for path, width in everything.items() if width >= cutoff})
    thin_children = [
        path
        for path, width in everything.items()
        if width < cutoff and path[:-1] in kept  # the first thin frame below a drawn one
    ]
    assert graph.dropped_frames == len(thin_children) > 0
    assert not graph.max_frames_reached
    note = f"{graph.dropped_frames} frames narrower than 1.00% of the total are not drawn"
    assert note in render_page(graph)


def test_at_most_max_frames_are_kept_and_they_are_the_widest() -> None:
    profile = random_profile(seed=5, samples=800)
    everything = merged_by_hand(profile, index=1)
    graph = build_flamegraph(profile, min_fraction=0, max_frames=50)
    kept = paths(graph)
    assert len(graph.frames) == 50
    assert min(kept.values()) >= sorted(everything.values(), reverse=True)[49]
    assert all(path[:-1] in kept for path in kept if len(path) > 1)  # still one tree
    assert graph.max_frames_reached
    assert "Only the 50 widest frames are drawn" in render_page(graph)


def render_page(graph: FlameGraph) -> str:
    return flamegraph_page.page(graph, title="synthetic", time_nanos=0)


def hostile_profile() -> ProfileBuilder:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    call_chain(
        builder,
        [
            "main.main",
            '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">',
            "pkg.Map[go.shape.struct { A int \"json:'a'\" }] & <T>",
        ],
    )
    builder.sample([3, 2, 1], [1_000_000]).sample([2, 1], [3_000_000])
    return builder


def test_the_page_is_self_contained_and_reaches_no_network() -> None:
    builder = call_chain(
        ProfileBuilder().sample_type("cpu", "nanoseconds"), ["main.main", "main.work"]
    )
    page = render_flamegraph(
        decode(builder.sample([2, 1], [10_000_000]).body()), title="checkout <cpu>"
    )
    assert "default-src 'none'" in page  # the browser itself refuses any fetch the page tries
    # The SVG namespace is a name, not an address: nothing else may point anywhere.
    addresses = page.replace('"http://www.w3.org/2000/svg"', "")
    for reference in ("http://", "https://", "src=", "href=", "@import", "url(", "@font-face"):
        assert reference not in addresses, reference
    assert "<title>checkout &lt;cpu&gt; flame graph</title>" in page
    assert "<h1>checkout &lt;cpu&gt;</h1>" in page


def test_function_names_are_data_that_cannot_break_out_of_the_page() -> None:
    page = render_flamegraph(decode(hostile_profile().body()))
    # Exactly two script elements, and nothing a name contains closes or opens one.
    assert len(re.findall(r"<script\b", page)) == 2
    assert len(re.findall(r"</script", page)) == 2
    assert "<img" not in page
    block = re.search(r'<script type="application/json" id="flame-data">(.*?)</script>', page, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert data["names"] == [
        "all",
        "main.main",
        '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">',
        "pkg.Map[go.shape.struct { A int \"json:'a'\" }] & <T>",
    ]
    assert data["frames"] == [0, 0, 4_000_000, 1, 1, 4_000_000, 2, 2, 4_000_000, 3, 3, 1_000_000]


def test_a_heap_profile_shows_in_use_space_unless_asked_for_another_type(tmp_path: Path) -> None:
    builder = ProfileBuilder()
    for type_, unit in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]:
        builder.sample_type(type_, unit)
    call_chain(builder, ["main.main", "main.holdMemory", "main.churn"])
    builder.sample([2, 1], [64, 64 << 20, 64, 64 << 20]).sample([3, 1], [9000, 900 << 20, 0, 0])
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(builder.gzipped())

    default = render_flamegraph(path)
    assert "inuse_space (bytes) · 64MB total" in default
    assert "main.holdMemory" in default and "main.churn" not in default
    allocations = render_flamegraph(path, sample_type="alloc_space")
    assert "alloc_space (bytes) · 964MB total" in allocations
    assert "main.churn" in allocations


def test_a_profile_with_nothing_to_draw_says_so() -> None:
    builder = call_chain(ProfileBuilder().sample_type("cpu", "nanoseconds"), ["main.main"])
    page = render_flamegraph(decode(builder.sample([1], [0]).body()))
    assert "The profile has no cpu values: nothing to draw." in page
