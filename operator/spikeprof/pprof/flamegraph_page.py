"""The flame graph's HTML page: one file with its data, style and script inline, no network.

The frames travel as JSON in a `<script type="application/json">` block, and the script draws
them as SVG (text and all, so names are in the DOM, searchable and selectable), redrawing only
what is visible when zoomed. Function names are data, never markup: the JSON has `<`, `>` and `&`
escaped so no name can close the block, and the script sets names with textContent only. A
Content-Security-Policy forbids every fetch, so opening the file never reaches the network.
"""

from __future__ import annotations

import datetime
import html
import json
from pathlib import Path
from typing import Any

from spikeprof.pprof import units
from spikeprof.pprof.flamegraph import FlameGraph, build_flamegraph
from spikeprof.pprof.profile import Profile, decode_file

_STYLE = """
:root { color-scheme: light; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  background: #fff; }
header { padding: 12px 16px 8px; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 2px; }
.meta, .note, .hint { margin: 2px 0; color: #555; font-size: 13px; }
.note { color: #8a5a00; }
.controls { display: flex; gap: 12px; align-items: center; margin-top: 8px; flex-wrap: wrap; }
#search { font: inherit; padding: 3px 6px; width: 22em; }
#matched { font-weight: 600; color: #7a1f7a; }
#chart { padding: 8px 16px 16px; }
#flame { display: block; width: 100%; }
.frame { cursor: pointer; }
.frame rect { stroke: #fff; stroke-width: 0.5; }
.frame text { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  fill: #000; pointer-events: none; }
.frame:hover rect { stroke: #000; stroke-width: 1; }
.frame.ancestor rect { opacity: 0.45; }
.frame.match rect { fill: #d24dd2; }
#tooltip { position: fixed; z-index: 2; max-width: 60ch; padding: 6px 8px; background: #fffbe6;
  border: 1px solid #c9b458; border-radius: 3px; box-shadow: 0 2px 6px rgba(0,0,0,.2);
  font-size: 13px; pointer-events: none; overflow-wrap: anywhere; }
#tooltip .name { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-weight: 600; }
"""

_SCRIPT = """
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("flame-data").textContent);
  // A plain graph packs (name, depth, value) per frame; a differential one (diff_page.py) adds
  // (base value, self, base self), is coloured by change and shows both figures.
  const diff = data.kind === "diff", stride = diff ? 6 : 3;
  const names = data.names, packed = data.frames, count = packed.length / stride;
  const total = data.total, baseTotal = data.baseTotal;
  const nameOf = new Int32Array(count), depth = new Int32Array(count);
  const parent = new Int32Array(count), end = new Int32Array(count);
  const value = new Float64Array(count), start = new Float64Array(count);
  const next = new Float64Array(count);
  const base = new Float64Array(count), self = new Float64Array(count);
  const baseSelf = new Float64Array(count);
  const path = [];
  let maxDepth = 0;
  // Frames come depth first: rebuild parents, x offsets and where each subtree ends.
  for (let i = 0; i < count; i++) {
    const at = stride * i;
    nameOf[i] = packed[at]; depth[i] = packed[at + 1]; value[i] = packed[at + 2];
    if (diff) { base[i] = packed[at + 3]; self[i] = packed[at + 4]; baseSelf[i] = packed[at + 5]; }
    while (path.length > depth[i]) end[path.pop()] = i;
    const p = path.length ? path[path.length - 1] : -1;
    parent[i] = p;
    start[i] = p >= 0 ? next[p] : 0;
    if (p >= 0) next[p] += value[i];
    next[i] = start[i];
    path.push(i);
    maxDepth = Math.max(maxDepth, depth[i]);
  }
  while (path.length) end[path.pop()] = count;
  // Differential: the change of a frame's self value, as a share of each total (or absolute, as
  // a share of the spike's total); the largest change on the page gets the deepest colour.
  const delta = new Float64Array(count);
  let largest = 0;
  if (diff) {
    for (let i = 0; i < count; i++) {
      const spikeShare = total ? self[i] / total : 0;
      delta[i] = data.normalized
        ? spikeShare - (baseTotal ? baseSelf[i] / baseTotal : 0)
        : (total ? (self[i] - baseSelf[i]) / total : 0);
      largest = Math.max(largest, Math.abs(delta[i]));
    }
  }

  const ROW = 18, PAD = 3, CHAR = 7.3, SVG = "http://www.w3.org/2000/svg";
  const chart = document.getElementById("chart"), svg = document.getElementById("flame");
  const tooltip = document.getElementById("tooltip"), search = document.getElementById("search");
  const matched = document.getElementById("matched"), reset = document.getElementById("reset");
  let zoomed = 0, matches = null;

  function format(v) {  // as pprof: the largest unit the value has at least one of
    if (v < 0) return "-" + format(-v);
    if (!data.ladder.length) {
      return String(v) + (data.unit && data.unit !== "count" ? " " + data.unit : "");
    }
    let best = null;
    for (const [unit, size] of data.ladder) {
      if (v / size >= 1 && (!best || size >= best[1])) best = [unit, size];
    }
    if (!best) return v === 0 ? "0" : String(v) + data.ladder[0][0];
    return (v / best[1]).toFixed(2).replace(/\\.00$/, "") + best[0];
  }
  function percent(v, of) { return of ? (100 * v / of).toFixed(2) + "%" : "0%"; }
  function color(i) {
    if (diff) {  // Gregg's scheme: red grew, blue shrank, white the same
      if (i === 0 || !largest || delta[i] === 0) return "rgb(250,250,250)";
      const fade = Math.round(250 - 190 * Math.min(1, Math.abs(delta[i]) / largest));
      const pale = fade + "," + fade;
      return delta[i] > 0 ? "rgb(250," + pale + ")" : "rgb(" + pale + ",250)";
    }
    if (i === 0) return "#e8a33d";
    const name = names[nameOf[i]];
    let h = 0;
    for (let k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) >>> 0;
    return "hsl(" + (8 + h % 44) + ", 85%, " + (55 + (h >>> 8) % 14) + "%)";
  }
  function shortName(name) {  // "github.com/acme/cart.(*Store).Get" -> "cart.(*Store).Get"
    const cut = name.search(/[(\\[]/);
    const slash = (cut >= 0 ? name.slice(0, cut) : name).lastIndexOf("/");
    return slash >= 0 ? name.slice(slash + 1) : name;
  }
  function label(name, width) {
    const fit = Math.floor((width - 2 * PAD) / CHAR);
    if (fit < 3) return "";
    if (name.length <= fit) return name;
    const short = shortName(name);
    return short.length <= fit ? short : short.slice(0, fit - 2) + "..";
  }
  function frame(i, x, width, ancestor) {
    const name = names[nameOf[i]];
    const g = document.createElementNS(SVG, "g");
    let cls = "frame";
    if (ancestor) cls += " ancestor";
    if (matches && matches[i]) cls += " match";
    g.setAttribute("class", cls);
    g.setAttribute("data-i", String(i));
    g.setAttribute("aria-label", name);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", x.toFixed(2));
    rect.setAttribute("y", String(depth[i] * ROW));
    rect.setAttribute("width", Math.max(width, 0.5).toFixed(2));
    rect.setAttribute("height", String(ROW - 1));
    rect.setAttribute("fill", color(i));
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", (x + PAD).toFixed(2));
    text.setAttribute("y", String(depth[i] * ROW + ROW - 5));
    text.textContent = label(name, width);
    g.append(rect, text);
    return g;
  }
  function draw() {
    const width = chart.clientWidth - 32 > 100 ? chart.clientWidth - 32 : 1200;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String((maxDepth + 1) * ROW));
    svg.setAttribute("viewBox", "0 0 " + width + " " + (maxDepth + 1) * ROW);
    const drawn = document.createDocumentFragment();
    if (count && value[zoomed] > 0) {
      const scale = width / value[zoomed], origin = start[zoomed];
      for (let a = parent[zoomed]; a >= 0; a = parent[a]) drawn.append(frame(a, 0, width, true));
      for (let i = zoomed; i < end[zoomed];) {
        const w = value[i] * scale;
        if (w < 0.5) { i = end[i]; continue; }  // too thin to see, and so is all below it
        drawn.append(frame(i, (start[i] - origin) * scale, w, false));
        i++;
      }
    }
    svg.replaceChildren(drawn);
  }
  function zoom(i) {
    zoomed = i;
    reset.hidden = i === 0;
    draw();
  }
  function find(text) {
    const term = text.trim().toLowerCase();
    if (!term) { matches = null; matched.textContent = ""; draw(); return; }
    const hit = names.map((name) => name.toLowerCase().includes(term));
    matches = new Uint8Array(count);
    for (let i = 1; i < count; i++) matches[i] = hit[nameOf[i]] ? 1 : 0;
    let sum = 0;  // a match inside a match is the same samples: count the outer one only
    for (let i = 1; i < count;) { if (matches[i]) { sum += value[i]; i = end[i]; } else i++; }
    matched.textContent = "Matched " + percent(sum, total) + " of the total (" + format(sum) + ")";
    draw();
  }
  function frameAt(event) {
    const g = event.target.closest ? event.target.closest("g.frame") : null;
    return g ? Number(g.getAttribute("data-i")) : -1;
  }
  function line(text) {
    const div = document.createElement("div");
    div.textContent = text;
    return div;
  }
  function figures(i) {
    if (!diff) {
      return [line(format(value[i]) + " (" + percent(value[i], total) + " of the total" +
        (zoomed ? ", " + percent(value[i], value[zoomed]) + " of the zoomed frame" : "") + ")")];
    }
    const points = (100 * delta[i]).toFixed(2);
    return [
      line("spike: " + format(value[i]) + " (" + percent(value[i], total) + "), self " +
        format(self[i]) + " (" + percent(self[i], total) + ")"),
      line("base: " + format(base[i]) + " (" + percent(base[i], baseTotal) + "), self " +
        format(baseSelf[i]) + " (" + percent(baseSelf[i], baseTotal) + ")"),
      line("self change: " + (delta[i] > 0 ? "+" : "") + points + " percentage points" +
        (data.normalized ? "" : " of the spike total")),
    ];
  }
  svg.addEventListener("click", (event) => { const i = frameAt(event); if (i >= 0) zoom(i); });
  svg.addEventListener("mousemove", (event) => {
    const i = frameAt(event);
    if (i < 0) { tooltip.hidden = true; return; }
    const name = line(names[nameOf[i]]);
    name.className = "name";
    tooltip.replaceChildren(name, ...figures(i));
    tooltip.hidden = false;
    const x = Math.min(event.clientX + 14, window.innerWidth - tooltip.offsetWidth - 4);
    const y = Math.min(event.clientY + 14, window.innerHeight - tooltip.offsetHeight - 4);
    tooltip.style.left = Math.max(x, 0) + "px";
    tooltip.style.top = Math.max(y, 0) + "px";
  });
  svg.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  reset.addEventListener("click", () => zoom(0));
  search.addEventListener("input", () => find(search.value));
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { search.value = ""; find(""); }
  });
  window.addEventListener("resize", () => requestAnimationFrame(draw));
  draw();
})();
"""


def _json_for_script(data: object) -> str:
    # Inside <script>, "</script>" or "<!--" in a name would end or bend the block: JSON's
    # \\u escapes keep the same strings without those characters.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_flamegraph(
    source: Profile | Path | str,
    *,
    sample_type: str | None = None,
    title: str | None = None,
) -> str:
    """A self-contained interactive flame graph page (HTML) of a profile or a profile file.

    The page needs nothing from the network: click a frame to zoom, type in the search box to
    highlight functions and see their share, hover for name, value and percentage. Write it
    next to the profile as UTF-8. Raises ProfileDecodeError for a bad file, ValueError for a
    sample type the profile does not have.
    """
    profile = source if isinstance(source, Profile) else decode_file(source)
    graph = build_flamegraph(profile, sample_type=sample_type)
    if title is None:
        binary = profile.main_mapping.filename if profile.main_mapping else ""
        program = binary.rstrip("/").rsplit("/", 1)[-1]
        title = f"{program} {graph.sample_type.type}" if program else graph.sample_type.type
    return page(graph, title=title, time_nanos=profile.time_nanos)


def page(graph: FlameGraph, *, title: str, time_nanos: int) -> str:
    """The whole HTML document for a flame graph."""
    data = {**sample_data(graph.sample_type.type, graph.sample_type.unit), "total": graph.total}
    data.update(names=list(graph.names), frames=[n for frame in graph.frames for n in frame])
    unit = graph.sample_type.unit
    meta = [f"{graph.sample_type.type} ({unit})", f"{units.scaled_label(graph.total, unit)} total"]
    if time_nanos:
        taken = datetime.datetime.fromtimestamp(time_nanos // 10**9, tz=datetime.UTC)
        meta.append(f"taken {taken:%Y-%m-%d %H:%M:%S} UTC")
    notes = []
    if not graph.total:
        notes.append(f"The profile has no {graph.sample_type.type} values: nothing to draw.")
    if graph.max_frames_reached:
        notes.append(
            f"Only the {len(graph.frames)} widest frames are drawn, {graph.dropped_frames} more "
            "are not; `go tool pprof` on the profile shows every one."
        )
    elif graph.dropped_frames:
        notes.append(
            f"{graph.dropped_frames} frames narrower than {graph.min_fraction:.2%} of the total "
            "are not drawn; `go tool pprof` on the profile shows every one."
        )
    return document(
        title=title,
        kind="flame graph",
        meta=meta,
        hint_html=(
            "Click a frame to zoom in on it, Reset to zoom out. Width is the share of the\n"
            "total in which a function is on the stack along that path."
        ),
        notes=notes,
        data=data,
        fallback_html=(
            "<code>go tool pprof -top</code> on the\nprofile gives the same functions as text."
        ),
    )


def sample_data(sample_type: str, unit: str) -> dict[str, Any]:
    """What the script needs to name and scale values: type, unit and pprof's unit ladder."""
    return {
        "type": sample_type,
        "unit": unit,
        "ladder": [list(step) for step in units.ladder(unit)],
    }


def document(
    *,
    title: str,
    kind: str,
    meta: list[str],
    hint_html: str,
    notes: list[str],
    data: dict[str, Any],
    fallback_html: str,
    extra_style: str = "",
) -> str:
    """The page around a graph's data; `hint_html` and `fallback_html` are trusted markup."""
    escaped_title = html.escape(title)
    note_html = "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escaped_title} {kind}</title>
<style>{_STYLE}{extra_style}</style>
</head>
<body>
<header>
<h1>{escaped_title}</h1>
<p class="meta">{html.escape(" · ".join(meta))}</p>
<p class="hint">{hint_html}</p>
{note_html}
<div class="controls">
<label>Search <input id="search" type="search" placeholder="part of a function name"
 autocomplete="off" spellcheck="false"></label>
<span id="matched" aria-live="polite"></span>
<button id="reset" type="button" hidden>Reset zoom</button>
</div>
</header>
<main id="chart"><svg id="flame" xmlns="http://www.w3.org/2000/svg" role="img"
 aria-label="{kind}"></svg></main>
<div id="tooltip" role="tooltip" hidden></div>
<noscript><p>This flame graph is drawn by JavaScript. {fallback_html}</p></noscript>
<script type="application/json" id="flame-data">{_json_for_script(data)}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
