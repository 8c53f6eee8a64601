"""Diffs rank functions by how much more of the profile they take in the spike than in the base."""

from __future__ import annotations

import json
import re

import pytest

from spikeprof.pprof.diff import (
    ProfileMismatchError,
    build_diff_flamegraph,
    diff_profiles,
    render_diff,
)
from spikeprof.pprof.diff_page import render_diff_flamegraph
from spikeprof.pprof.profile import Profile, decode
from tests.unit.pprof_proto import ProfileBuilder, call_chain

NAMES = ["main.main", "main.serve", "main.parse", "main.hash"]


def cpu_profile(*, serve: int, parse: int, hash_: int) -> Profile:
    """main.main -> main.serve (self), -> main.parse (leaf), -> main.hash (leaf), in ns."""
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    call_chain(builder, NAMES)
    builder.sample([2, 1], [serve // 10, serve])
    builder.sample([3, 2, 1], [parse // 10, parse])
    builder.sample([4, 2, 1], [hash_ // 10, hash_])
    return decode(builder.body())


def heap_profile() -> Profile:
    builder = ProfileBuilder().sample_type("inuse_space", "bytes")
    call_chain(builder, NAMES)
    builder.sample([3, 2, 1], [4096])
    return decode(builder.body())


def test_a_function_that_gained_tops_the_gainers_and_one_that_lost_tops_the_losers() -> None:
    base = cpu_profile(serve=100, parse=100, hash_=800)
    spike = cpu_profile(serve=100, parse=800, hash_=100)
    diff = diff_profiles(base, spike)
    assert diff.sample_type.type == "cpu"
    gainer = diff.gainers()[0]
    loser = diff.losers()[0]
    assert (gainer.function, gainer.base_flat, gainer.spike_flat, gainer.flat_delta) == (
        "main.parse",
        100,
        800,
        700,
    )
    assert gainer.flat_share_delta == pytest.approx(0.7)
    assert (loser.function, loser.flat_delta) == ("main.hash", -700)
    assert [row.function for row in diff.gainers()] == ["main.parse"]
    assert [row.function for row in diff.losers()] == ["main.hash"]
    assert diff.functions[0].function == "main.parse"  # the whole list is sorted by gain too


def test_normalised_shares_compare_a_long_profile_fairly_with_a_short_one() -> None:
    # The same shape over three times the time: every absolute figure grows, no share changes.
    short = cpu_profile(serve=100, parse=200, hash_=700)
    long = cpu_profile(serve=300, parse=600, hash_=2100)
    normalised = diff_profiles(short, long)
    assert normalised.normalized
    assert normalised.gainers() == ()
    assert normalised.losers() == ()
    assert all(row.flat_share_delta == pytest.approx(0) for row in normalised.functions)
    absolute = diff_profiles(short, long, normalize=False, rank_by="flat")
    assert [row.function for row in absolute.gainers()] == ["main.hash", "main.parse", "main.serve"]
    assert absolute.gainers()[0].flat_delta == 1400
    by_cum = diff_profiles(short, long, normalize=False)
    assert {row.function for row in by_cum.gainers()[:2]} == {"main.main", "main.serve"}


def test_ranking_by_cum_finds_the_caller_that_got_hot_rather_than_the_shared_leaf() -> None:
    # Both callers end in the same library leaf; the work moved from main.hash to main.parse.
    def profile(parse: int, hash_: int) -> Profile:
        builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
        call_chain(builder, [*NAMES, "sha256.block"])
        builder.location(6, [5]).location(7, [5])  # sha256.block, reached from two callers
        builder.sample([6, 3, 2, 1], [parse]).sample([7, 4, 2, 1], [hash_])
        return decode(builder.body())

    base, spike = profile(parse=100, hash_=900), profile(parse=900, hash_=100)
    gainer = diff_profiles(base, spike).gainers()[0]
    assert (gainer.function, gainer.cum_share_delta) == ("main.parse", pytest.approx(0.8))
    assert diff_profiles(base, spike).losers()[0].function == "main.hash"
    # By flat nothing moved: the leaf took all the time before and after.
    assert diff_profiles(base, spike, rank_by="flat").gainers() == ()


def test_profiles_of_different_types_are_refused_with_a_reason() -> None:
    with pytest.raises(ProfileMismatchError, match=r"measures cpu .* the spike profile does not"):
        diff_profiles(cpu_profile(serve=1, parse=1, hash_=1), heap_profile())
    with pytest.raises(ProfileMismatchError, match="no sample type 'alloc_space'"):
        diff_profiles(heap_profile(), heap_profile(), sample_type="alloc_space")


def test_json_and_text_reports_show_gainers_and_losers_with_both_figures() -> None:
    diff = diff_profiles(
        cpu_profile(serve=100, parse=100, hash_=800), cpu_profile(serve=100, parse=800, hash_=100)
    )
    document = json.loads(json.dumps(diff.to_json()))
    assert document["gainers"][0]["function"] == "main.parse"
    assert document["gainers"][0]["delta"]["flatPercentPoints"] == 70.0
    assert document["gainers"][0]["base"]["flat"] == 100
    assert document["losers"][0]["function"] == "main.hash"
    text = render_diff(diff)
    gainers, losers = text.split("Top losers:")
    assert "+70.00pp" in gainers and "main.parse" in gainers
    assert "-70.00pp" in losers and "main.hash" in losers


def test_the_diff_flame_graph_is_as_wide_as_the_spike_and_knows_the_base_on_each_path() -> None:
    base = cpu_profile(serve=100, parse=100, hash_=800)
    spike = cpu_profile(serve=100, parse=800, hash_=100)
    graph = build_diff_flamegraph(base, spike)
    frames = {graph.names[f[0]]: f for f in graph.frames}
    assert frames["all"][2:4] == (1000, 1000)
    _, depth, spike_value, base_value, spike_self, base_self = frames["main.parse"]
    assert (depth, spike_value, base_value, spike_self, base_self) == (3, 800, 100, 800, 100)


def test_the_diff_flame_graph_page_is_self_contained_and_carries_every_frame() -> None:
    page = render_diff_flamegraph(
        cpu_profile(serve=100, parse=100, hash_=800),
        cpu_profile(serve=100, parse=800, hash_=100),
        title="<checkout> cpu",
    )
    assert "default-src 'none'" in page
    assert not re.search(r"(src|href)=\"https?:", page)
    assert "&lt;checkout&gt; cpu" in page
    data = re.search(r'id="flame-data">(.*?)</script>', page, re.S)
    assert data is not None
    parsed = json.loads(data.group(1))
    assert "main.parse" in parsed["names"]
    assert len(parsed["frames"]) == 6 * 5  # all, main, serve, parse, hash
