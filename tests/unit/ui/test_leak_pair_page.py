"""The UI's capture page shows a leak pair: its growth flame graph, its top sites, or why not."""

from __future__ import annotations

from typing import Any

from spikeprof.core import catalog
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.ui import pages

KEY = ArtifactKey("shop", "leaky", "web-1", "20261126T010000.000Z-threshold")
MiB = 2**20


def _page(growth: dict[str, Any], files: dict[str, int]) -> str:
    metadata = {
        "requestedAt": "2026-11-26T01:00:00Z",
        "profiles": [
            {
                "parameters": {"type": "heap", "pair": 20.0},
                "file": "heap.pb.gz",
                "bytes": 10,
                "growth": growth,
            }
        ],
    }
    capture = catalog.capture_from_metadata(KEY, metadata, {"heap.pb.gz": 10, **files})
    return str(pages.capture_page(capture, pages.Neighbours(None, None, [capture]), top=5))


def test_the_capture_page_links_the_growth_graph_and_lists_the_sites_that_grew() -> None:
    growth = {
        "seconds": 20.0,
        "measuredSeconds": 20.1,
        "secondFile": "heap.second.pb.gz",
        "flamegraph": "heap.growth.html",
        "unit": "bytes",
        "growth": 20 * MiB,
        "top": [{"function": "main.<leak>", "before": MiB, "after": 21 * MiB, "growth": 20 * MiB}],
    }
    page = _page(growth, {"heap.second.pb.gz": 10, "heap.growth.html": 10})
    assert 'class="growth"' in page and "heap.growth.html" in page
    assert "Leak pair: in-use bytes grew by 20MB in 20.1s (heap.second.pb.gz)" in page
    assert "<td>main.&lt;leak&gt;</td>" in page  # names are text, never markup


def test_the_capture_page_says_why_a_pair_has_no_second_profile() -> None:
    missing = {"reason": "PodGone", "message": "the pod was deleted between the two profiles"}
    page = _page({"seconds": 20.0, "missing": missing}, {})
    assert "Leak pair: no second profile. PodGone: the pod was deleted between" in page
    assert 'class="growth"' not in page
