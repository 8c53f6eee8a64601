"""The differential flame graph's HTML page: flamegraph_page.py's page, coloured by change.

Same promises as the plain page (one file, data as escaped JSON, names set as text only, a
Content-Security-Policy that forbids every fetch), the same style and the same script, told by
`kind: "diff"` that each frame carries its spike and base values: its colour says how its self
value changed, and the tooltip gives both figures and the change.
"""

from __future__ import annotations

import datetime
import html

from spikeprof.pprof import flamegraph_page, units
from spikeprof.pprof.diff import DiffFlameGraph, build_diff_flamegraph
from spikeprof.pprof.profile import Profile

_EXTRA_STYLE = """
.legend { display: inline-flex; gap: 4px; align-items: center; font-size: 13px; color: #555; }
.legend i { display: inline-block; width: 28px; height: 12px; border: 1px solid #ccc; }
"""


def _taken(time_nanos: int) -> str:
    if not time_nanos:
        return "unknown time"
    taken = datetime.datetime.fromtimestamp(time_nanos // 10**9, tz=datetime.UTC)
    return f"{taken:%Y-%m-%d %H:%M:%S} UTC"


def render_diff_flamegraph(
    base: Profile,
    spike: Profile,
    *,
    sample_type: str | None = None,
    title: str | None = None,
    normalize: bool = True,
) -> str:
    """A self-contained differential flame graph page (HTML), no network needed.

    Width is the spike's; colour is the change of a frame's self value on that path from the
    base to the spike (as Brendan Gregg's differential flame graphs): red grew, blue shrank,
    white unchanged, deeper for larger changes. Normalised (the default) compares shares of each
    profile's total. Search and click-to-zoom work as in the plain flame graph.
    Raises ProfileMismatchError for profiles that measure different things.
    """
    graph = build_diff_flamegraph(base, spike, sample_type=sample_type)
    if title is None:
        title = f"{graph.sample_type.type}: spike against base"
    return page(
        graph, title=title, normalized=normalize, time_nanos=(base.time_nanos, spike.time_nanos)
    )


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
        **flamegraph_page.sample_data(graph.sample_type.type, unit),
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
    how = "share of each profile's total" if normalized else "value"
    return flamegraph_page.document(
        title=title,
        kind="differential flame graph",
        meta=meta,
        hint_html=f"""Width is the spike profile's. Colour is the change of each frame's self
{html.escape(how)} from the base to the spike on the same call path:
<span class="legend"><i style="background:rgb(250,60,60)"></i>grew
<i style="background:rgb(250,250,250)"></i>same
<i style="background:rgb(60,60,250)"></i>shrank</span>.
Click a frame to zoom in on it, Reset to zoom out.""",
        notes=notes,
        data=data,
        fallback_html="<code>spikeprof captures diff</code>\ngives the same comparison as text.",
        extra_style=_EXTRA_STYLE,
    )
