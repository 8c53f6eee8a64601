"""Flame graphs of real profiles, opened in headless Chromium: drawn, searchable, zoomable, safe.

Chromium is Debian's `chromium` package. It is a requirement, not an option: without it these
tests fail (in CI and outside it), they never skip.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from spikeprof.pprof.diff_page import render_diff_flamegraph
from spikeprof.pprof.flamegraph_page import render_flamegraph
from spikeprof.pprof.profile import decode, decode_file
from spikeprof.pprof.summary import summarize
from tests.integration.pprof.devtools import VIEWPORT, Page
from tests.unit.pprof_proto import ProfileBuilder, call_chain

HOSTILE_NAME = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def write_page(directory: Path, name: str, html: str) -> str:
    path = directory / name
    path.write_text(html, encoding="utf-8")
    return path.as_uri()


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


FRAME_NAMES = (
    "[...document.querySelectorAll('#flame g.frame')].map(g => g.getAttribute('aria-label'))"
)


def frame(name: str) -> str:
    return f"#flame g.frame[aria-label={json.dumps(name)}]"


async def test_a_cpu_flame_graph_draws_its_frames_names_the_hot_function_and_fetches_nothing(
    page: Page, target_profiles: dict[str, Path], tmp_path: Path
) -> None:
    url = write_page(tmp_path, "cpu.html", render_flamegraph(target_profiles["cpu"]))
    await page.call("Network.enable")
    await page.navigate(url)

    names = await page.evaluate(FRAME_NAMES)
    assert len(names) >= 5
    assert names[0] == "all"
    assert "main.burnCPU" in names
    burn_label = await page.evaluate(
        f"document.querySelector({json.dumps(frame('main.burnCPU'))}).textContent"
    )
    assert burn_label == "main.burnCPU"
    widths = await page.evaluate(
        f"[document.querySelector({json.dumps(frame('main.burnCPU'))} + ' rect').getBBox().width,"
        " document.getElementById('flame').getBBox().width]"
    )
    assert widths[0] > 0.5 * widths[1]  # the burning goroutine is most of the profile
    requests = [
        e["params"]["request"]["url"]
        for e in page.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests and all(url.startswith("file://") for url in requests), requests

    png = await page.screenshot(tmp_path / "cpu-flamegraph.png")
    assert png_size(png) == VIEWPORT
    assert len(png) > 10_000  # a page with a drawing on it, not a blank one


async def test_searching_highlights_the_function_and_shows_its_share_of_the_total(
    page: Page, target_profiles: dict[str, Path], tmp_path: Path
) -> None:
    cpu = summarize(decode_file(target_profiles["cpu"])).default
    burn = next(row for row in cpu.functions if row.function == "main.burnCPU")
    await page.navigate(write_page(tmp_path, "cpu.html", render_flamegraph(target_profiles["cpu"])))

    await page.type_into("#search", "burnCPU")

    highlighted = await page.evaluate(
        "[...document.querySelectorAll('#flame g.frame.match')].map(g => g.getAttribute('aria-label'))"
    )
    assert highlighted and set(highlighted) == {"main.burnCPU"}
    matched = await page.evaluate("document.getElementById('matched').textContent")
    assert matched.startswith("Matched ") and "% of the total" in matched
    shown = float(matched.removeprefix("Matched ").split("%")[0])
    # Two decimals rounded by JavaScript's toFixed and by Python's format may differ by one
    # in the last digit on an exact tie; otherwise the search shows the function's cum share.
    assert abs(shown - 100 * burn.cum / cpu.total) <= 0.01
    await page.screenshot(tmp_path / "cpu-search.png")

    await page.call(
        "Input.dispatchKeyEvent",
        type="keyDown",
        key="Escape",
        code="Escape",
        windowsVirtualKeyCode=27,
    )
    assert await page.evaluate("document.querySelectorAll('#flame g.frame.match').length") == 0
    assert await page.evaluate("document.getElementById('matched').textContent") == ""


async def test_clicking_a_frame_zooms_in_on_it_and_reset_zooms_out(
    page: Page, target_profiles: dict[str, Path], tmp_path: Path
) -> None:
    await page.navigate(write_page(tmp_path, "cpu.html", render_flamegraph(target_profiles["cpu"])))
    svg_width = await page.evaluate("document.getElementById('flame').getBBox().width")
    target = "crypto/sha256.Sum256"
    before = await page.evaluate(
        f"document.querySelector({json.dumps(frame(target) + ' rect')}).getBBox().width"
    )
    assert before < svg_width - 1

    await page.click(*await page.center_of(frame(target)))

    after = await page.evaluate(
        f"document.querySelector({json.dumps(frame(target) + ' rect')}).getBBox().width"
    )
    assert after == pytest.approx(svg_width, abs=1)
    assert await page.evaluate("document.getElementById('reset').hidden") is False
    faded = await page.evaluate(
        "[...document.querySelectorAll('#flame g.frame.ancestor')]"
        ".map(g => [g.getAttribute('aria-label'), g.querySelector('rect').getBBox().width])"
    )
    # The frames above the zoomed one stay, full width and faded: the path that led there.
    assert {"all", "main.burnCPU"} <= {name for name, _ in faded}
    assert all(width == pytest.approx(svg_width, abs=1) for _, width in faded)
    await page.screenshot(tmp_path / "cpu-zoomed.png")

    await page.click(*await page.center_of("#reset"))
    assert await page.evaluate("document.getElementById('reset').hidden") is True
    again = await page.evaluate(
        f"document.querySelector({json.dumps(frame(target) + ' rect')}).getBBox().width"
    )
    assert again == pytest.approx(before, abs=0.01)


async def test_hovering_a_frame_shows_its_name_value_and_share(
    page: Page, target_profiles: dict[str, Path], tmp_path: Path
) -> None:
    await page.navigate(write_page(tmp_path, "cpu.html", render_flamegraph(target_profiles["cpu"])))
    assert await page.evaluate("document.getElementById('tooltip').hidden") is True

    await page.hover(*await page.center_of(frame("main.burnCPU")))

    assert await page.evaluate("document.getElementById('tooltip').hidden") is False
    name, figures = await page.evaluate(
        "[...document.getElementById('tooltip').children].map(e => e.textContent)"
    )
    assert name == "main.burnCPU"
    assert figures.endswith("% of the total)")
    assert figures.split(" ")[0].endswith("s")  # a CPU time, auto-scaled like pprof's: "1.9s"


async def test_a_heap_flame_graph_shows_where_memory_is_held(
    page: Page, target_profiles: dict[str, Path], tmp_path: Path
) -> None:
    await page.navigate(
        write_page(tmp_path, "heap.html", render_flamegraph(target_profiles["heap"]))
    )
    assert "inuse_space (bytes)" in await page.evaluate(
        "document.querySelector('.meta').textContent"
    )
    assert "main.holdMemory" in await page.evaluate(FRAME_NAMES)
    await page.screenshot(tmp_path / "heap-flamegraph.png")


async def test_hostile_function_names_show_as_text_and_run_nothing(
    page: Page, tmp_path: Path
) -> None:
    builder = ProfileBuilder().sample_type("cpu", "nanoseconds")
    call_chain(
        builder,
        ["main.main", HOSTILE_NAME, "pkg.Map[go.shape.struct { A int \"json:'a'\" }] & <T>"],
    )
    builder.sample([3, 2, 1], [10_000_000]).sample([2, 1], [30_000_000])
    await page.navigate(
        write_page(tmp_path, "hostile.html", render_flamegraph(decode(builder.body())))
    )

    assert await page.evaluate("window.pwned === undefined") is True
    assert await page.evaluate("document.querySelectorAll('img').length") == 0
    assert await page.evaluate("document.scripts.length") == 2  # the data and the page's own
    names = await page.evaluate(FRAME_NAMES)
    assert names == [
        "all",
        "main.main",
        HOSTILE_NAME,
        "pkg.Map[go.shape.struct { A int \"json:'a'\" }] & <T>",
    ]
    await page.hover(*await page.center_of(frame(HOSTILE_NAME)))
    assert (
        await page.evaluate("document.querySelector('#tooltip .name').textContent") == HOSTILE_NAME
    )
    assert await page.evaluate("window.pwned === undefined") is True


def _cpu_profile(*, parse: int, hash_: int) -> bytes:
    """main.main -> main.serve -> main.parse / main.hash (leaves), values in nanoseconds."""
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    call_chain(builder, ["main.main", "main.serve", "main.parse", "main.hash"])
    builder.sample([3, 2, 1], [parse // 10_000_000, parse])
    builder.sample([4, 2, 1], [hash_ // 10_000_000, hash_])
    return builder.body()


def _fill(name: str) -> str:
    return f"document.querySelector({json.dumps(frame(name) + ' rect')}).getAttribute('fill')"


async def test_a_differential_flame_graph_is_red_where_the_spike_grew_and_blue_where_it_shrank(
    page: Page, tmp_path: Path
) -> None:
    base = decode(_cpu_profile(parse=200_000_000, hash_=800_000_000))
    spike = decode(_cpu_profile(parse=800_000_000, hash_=200_000_000))
    html = render_diff_flamegraph(base, spike, title="checkout-0 cpu")
    await page.navigate(write_page(tmp_path, "diff.html", html))

    assert set(await page.evaluate(FRAME_NAMES)) >= {"main.serve", "main.parse", "main.hash"}
    # Gregg's colours: red grew (rgb(250, x, x)), blue shrank (rgb(x, x, 250)), white the same.
    assert await page.evaluate(_fill("main.parse")) == "rgb(250,60,60)"  # the largest change
    assert await page.evaluate(_fill("main.hash")) == "rgb(60,60,250)"
    assert await page.evaluate(_fill("main.serve")) == "rgb(250,250,250)"  # no self time

    await page.hover(*await page.center_of(frame("main.parse")))
    name, spike_line, base_line, change = await page.evaluate(
        "[...document.getElementById('tooltip').children].map(e => e.textContent)"
    )
    assert name == "main.parse"
    assert spike_line == "spike: 800ms (80.00%), self 800ms (80.00%)"
    assert base_line == "base: 200ms (20.00%), self 200ms (20.00%)"
    assert change == "self change: +60.00 percentage points"
    assert await page.evaluate("window.performance.getEntriesByType('resource').length") == 0
