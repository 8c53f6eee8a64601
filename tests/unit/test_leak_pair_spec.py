"""Leak pairs as a session asks for them (spec), and as `spikeprof captures show` prints them."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof import captures
from spikeprof.core import catalog
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.spec import SpecError, parse_spec

KEY = ArtifactKey("shop", "leaky", "web-1", "20261126T010000.000Z-threshold")
MiB = 2**20


def spec(*profiles: dict[str, Any]) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": list(profiles),
        "output": {"volume": {}},
    }


def test_a_heap_pair_is_read_in_seconds_and_recorded_in_the_parameters() -> None:
    [heap] = parse_spec(spec({"type": "heap", "pair": "1m30s", "gc": True})).profiles
    assert heap.pair == 90.0
    assert heap.second_file_name == "heap.second.pb.gz"
    assert heap.parameters() == {"type": "heap", "gc": True, "pair": 90.0}


def test_a_heap_profile_without_pair_is_taken_once() -> None:
    [heap] = parse_spec(spec({"type": "heap"})).profiles
    assert heap.pair is None
    assert "pair" not in heap.parameters()


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"type": "allocs", "pair": "20s"}, "spec.profiles[0].pair applies only to heap profiles"),
        ({"type": "cpu", "pair": "20s"}, "spec.profiles[0].pair applies only to heap profiles"),
        ({"type": "heap", "pair": "soon"}, "spec.profiles[0].pair:"),
        ({"type": "heap", "pair": "500ms"}, "spec.profiles[0].pair must be between 1s and 5m"),
        ({"type": "heap", "pair": "6m"}, "spec.profiles[0].pair must be between 1s and 5m"),
    ],
)
def test_a_pair_that_cannot_be_taken_is_named_by_field(
    profile: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(spec(profile))
    assert str(raised.value).startswith(message)


def _capture(growth: dict[str, Any]) -> catalog.Capture:
    metadata = {
        "requestedAt": "2026-11-26T01:00:00Z",
        "trigger": {"type": "threshold", "reason": "memory rising"},
        "profiles": [
            {
                "parameters": {"type": "heap", "pair": 20.0},
                "file": "heap.pb.gz",
                "bytes": 2048,
                "sha256": "0" * 64,
                "flamegraph": "heap.flamegraph.html",
                "growth": growth,
            }
        ],
    }
    return catalog.capture_from_metadata(KEY, metadata, {"heap.pb.gz": 2048})


GROWN = {
    "seconds": 20.0,
    "secondFile": "heap.second.pb.gz",
    "secondSha256": "1" * 64,
    "flamegraph": "heap.growth.html",
    "sampleType": "inuse_space",
    "unit": "bytes",
    "before": 9 * MiB,
    "after": 29 * MiB,
    "growth": 20 * MiB,
    "measuredSeconds": 20.1,
    "growthPerSecond": MiB,
    "grownSites": 1,
    "top": [{"function": "main.leak", "before": MiB, "after": 21 * MiB, "growth": 20 * MiB}],
}


def test_show_prints_the_sites_that_grew_between_the_pair() -> None:
    capture = _capture(GROWN)
    assert capture.profiles[0].growth == GROWN
    text = "\n".join(captures.describe_capture(capture, top=5))
    assert "Leak pair: heap.second.pb.gz, 20s later (measured 20.1s)" in text
    # pprof's units: MB is 2**20 bytes, as `go tool pprof -top` prints it.
    assert "inuse_space: 9MB -> 29MB (+20MB, +1MB/s), growth flame graph heap.growth.html" in text
    row = next(line for line in text.splitlines() if line.endswith("main.leak"))
    assert row.split() == ["+20MB", "1MB", "21MB", "main.leak"]


def test_show_says_why_a_pair_has_no_second_profile() -> None:
    missing = {"reason": "PodGone", "message": "the pod was deleted between the two profiles"}
    text = "\n".join(captures.describe_capture(_capture({"seconds": 20.0, "missing": missing}), 5))
    assert (
        "Leak pair: no second profile 20s later; the first is kept. "
        "PodGone: the pod was deleted between the two profiles"
    ) in text


def test_the_growth_page_is_one_of_the_capture_s_own_pages() -> None:
    assert catalog.flamegraph_pages(_capture(GROWN)) == {
        "heap.flamegraph.html",
        "heap.growth.html",
    }


def test_the_second_profile_s_checksum_is_one_of_the_capture_s_checksums() -> None:
    assert catalog.checksums(_capture(GROWN)) == {
        "heap.pb.gz": "0" * 64,
        "heap.second.pb.gz": "1" * 64,
    }
