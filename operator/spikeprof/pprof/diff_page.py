"""The differential flame graph's HTML page: flamegraph_page.py's page, coloured by change.

Same promises as the plain page (one file, data as escaped JSON, names set as text only, a
Content-Security-Policy that forbids every fetch), the same style and the same script, told by
`kind: "diff"` that each frame carries its spike and base values: its colour says how its self
value changed, and the tooltip gives both figures and the change.
"""

from __future__ import annotations

import datetime
import html
from typing import TYPE_CHECKING

from spikeprof.pprof import flamegraph_page, units

if TYPE_CHECKING:
    from spikeprof.pprof.diff import DiffFlameGraph

_EXTRA_STYLE = """
.legend { display: inline-flex; gap: 4px; align-items: center; font-size: 13px; color: #555; }
.legend i { display: inline-block; width: 28px; height: 12px; border: 1px solid #ccc; }
"""


def _taken(time_nanos: int) -> str:
    if not time_nanos:
        return "unknown time"
    taken = datetime.datetime.fromtimestamp(time_nanos // 10**9, tz=datetime.UTC)
    return f"{taken:%Y-%m-%d %H:%M:%S} UTC"


def page(
    graph: DiffFlameGraph,
    *,
    title: str,
    normalized: bool,
    time_nanos: tuple[int, int],
) -> str:
    """The whole HTML document for a differential flame graph (time_nanos: base, spike)."""
    unit = graph.sample_type.unit
    data = {
        "type": graph.sample_type.type,
        "unit": unit,
        "ladder": [list(step) for step in units.ladder(unit)],
        "kind": "diff",  # the shared script draws frames of 6 numbers, coloured by change
        "total": graph.spike_total,
        "baseTotal": graph.base_total,
        "normalized": normalized,
        "names": list(graph.names),
        "frames": [number for frame in graph.frames for number in frame],
    }
    meta = [
        f"{graph.sample_type.type} ({unit})",
        f"spike {units.scaled_label(graph.spike_total, unit)} total, taken {_taken(time_nanos[1])}",
        f"base {units.scaled_label(graph.base_total, unit)} total, taken {_taken(time_nanos[0])}",
    ]
    notes = []
    if not graph.spike_total:
        notes.append(f"The spike profile has no {graph.sample_type.type} values: nothing to draw.")
    if graph.dropped_frames:
        notes.append(
            f"{graph.dropped_frames} frames too narrow to see are not drawn; "
            "`spikeprof captures diff` lists every function."
        )
    if graph.base_only_share >= 0.0005:
        notes.append(
            f"{graph.base_only_share:.2%} of the base is on call paths the spike no longer has; "
            "width is the spike's, so they are not drawn: see the losers of "
            "`spikeprof captures diff`."
        )
    note_html = "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
    how = "share of each profile's total" if normalized else "value"
    escaped_title = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escaped_title} differential flame graph</title>
<style>{flamegraph_page._STYLE}{_EXTRA_STYLE}</style>
</head>
<body>
<header>
<h1>{escaped_title}</h1>
<p class="meta">{html.escape(" · ".join(meta))}</p>
<p class="hint">Width is the spike profile's. Colour is the change of each frame's self
{html.escape(how)} from the base to the spike on the same call path:
<span class="legend"><i style="background:rgb(250,60,60)"></i>grew
<i style="background:rgb(250,250,250)"></i>same
<i style="background:rgb(60,60,250)"></i>shrank</span>.
Click a frame to zoom in on it, Reset to zoom out.</p>
{note_html}
<div class="controls">
<label>Search <input id="search" type="search" placeholder="part of a function name"
 autocomplete="off" spellcheck="false"></label>
<span id="matched" aria-live="polite"></span>
<button id="reset" type="button" hidden>Reset zoom</button>
</div>
</header>
<main id="chart"><svg id="flame" xmlns="http://www.w3.org/2000/svg" role="img"
 aria-label="differential flame graph"></svg></main>
<div id="tooltip" role="tooltip" hidden></div>
<noscript><p>This flame graph is drawn by JavaScript. <code>spikeprof captures diff</code>
gives the same comparison as text.</p></noscript>
<script type="application/json" id="flame-data">{flamegraph_page._json_for_script(data)}</script>
<script>{flamegraph_page._SCRIPT}</script>
</body>
</html>
"""
