"""The differential flame graph's HTML page: flamegraph_page.py's page, coloured by change.

Same promises as the plain page (one file, data as escaped JSON, names set as text only, a
Content-Security-Policy that forbids every fetch) and the same style; the script differs in
what it draws: each frame carries its spike and base values, its colour says how its self value
changed, and the tooltip gives both figures and the change.
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

_SCRIPT = """
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("flame-data").textContent);
  const names = data.names, packed = data.frames, count = packed.length / 6;
  const total = data.spikeTotal, baseTotal = data.baseTotal, normalized = data.normalized;
  const nameOf = new Int32Array(count), depth = new Int32Array(count);
  const parent = new Int32Array(count), end = new Int32Array(count);
  const value = new Float64Array(count), start = new Float64Array(count);
  const base = new Float64Array(count), self = new Float64Array(count);
  const baseSelf = new Float64Array(count), next = new Float64Array(count);
  const path = [];
  let maxDepth = 0;
  for (let i = 0; i < count; i++) {
    nameOf[i] = packed[6 * i]; depth[i] = packed[6 * i + 1]; value[i] = packed[6 * i + 2];
    base[i] = packed[6 * i + 3]; self[i] = packed[6 * i + 4]; baseSelf[i] = packed[6 * i + 5];
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
  // The change of a frame's self value, as a share of each total (or absolute, as a share of
  // the spike's total); the largest change on the page gets the deepest colour.
  function change(spikeValue, baseValue) {
    const spikeShare = total ? spikeValue / total : 0;
    if (normalized) return spikeShare - (baseTotal ? baseValue / baseTotal : 0);
    return total ? (spikeValue - baseValue) / total : 0;
  }
  const delta = new Float64Array(count);
  let largest = 0;
  for (let i = 0; i < count; i++) {
    delta[i] = change(self[i], baseSelf[i]);
    largest = Math.max(largest, Math.abs(delta[i]));
  }

  const ROW = 18, PAD = 3, CHAR = 7.3, SVG = "http://www.w3.org/2000/svg";
  const chart = document.getElementById("chart"), svg = document.getElementById("flame");
  const tooltip = document.getElementById("tooltip"), search = document.getElementById("search");
  const matched = document.getElementById("matched"), reset = document.getElementById("reset");
  let zoomed = 0, matches = null;

  function format(v) {
    const negative = v < 0;
    v = Math.abs(v);
    let text;
    if (!data.ladder.length) {
      text = String(v) + (data.unit && data.unit !== "count" ? " " + data.unit : "");
    } else {
      let best = null;
      for (const [unit, size] of data.ladder) {
        if (v / size >= 1 && (!best || size >= best[1])) best = [unit, size];
      }
      if (!best) text = v === 0 ? "0" : String(v) + data.ladder[0][0];
      else text = (v / best[1]).toFixed(2).replace(/\\.00$/, "") + best[0];
    }
    return negative ? "-" + text : text;
  }
  function percent(v, of) { return of ? (100 * v / of).toFixed(2) + "%" : "0%"; }
  function color(i) {  // Gregg's scheme: red grew, blue shrank, white the same
    if (i === 0 || !largest || delta[i] === 0) return "rgb(250,250,250)";
    const strength = Math.min(1, Math.abs(delta[i]) / largest);
    const fade = Math.round(250 - 190 * strength);
    const pale = fade + "," + fade;
    return delta[i] > 0 ? "rgb(250," + pale + ")" : "rgb(" + pale + ",250)";
  }
  function shortName(name) {
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
        if (w < 0.5) { i = end[i]; continue; }
        drawn.append(frame(i, (start[i] - origin) * scale, w, false));
        i++;
      }
    }
    svg.replaceChildren(drawn);
  }
  function zoom(i) { zoomed = i; reset.hidden = i === 0; draw(); }
  function find(text) {
    const term = text.trim().toLowerCase();
    if (!term) { matches = null; matched.textContent = ""; draw(); return; }
    const hit = names.map((name) => name.toLowerCase().includes(term));
    matches = new Uint8Array(count);
    for (let i = 1; i < count; i++) matches[i] = hit[nameOf[i]] ? 1 : 0;
    let sum = 0, baseSum = 0;
    for (let i = 1; i < count;) {
      if (matches[i]) { sum += value[i]; baseSum += base[i]; i = end[i]; } else i++;
    }
    matched.textContent = "Matched " + percent(sum, total) + " of the spike (" + format(sum) +
      "), " + percent(baseSum, baseTotal) + " of the base (" + format(baseSum) + ")";
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
  svg.addEventListener("click", (event) => { const i = frameAt(event); if (i >= 0) zoom(i); });
  svg.addEventListener("mousemove", (event) => {
    const i = frameAt(event);
    if (i < 0) { tooltip.hidden = true; return; }
    const name = line(names[nameOf[i]]);
    name.className = "name";
    const points = (100 * delta[i]).toFixed(2);
    tooltip.replaceChildren(
      name,
      line("spike: " + format(value[i]) + " (" + percent(value[i], total) + "), self " +
        format(self[i]) + " (" + percent(self[i], total) + ")"),
      line("base: " + format(base[i]) + " (" + percent(base[i], baseTotal) + "), self " +
        format(baseSelf[i]) + " (" + percent(baseSelf[i], baseTotal) + ")"),
      line("self change: " + (delta[i] > 0 ? "+" : "") + points + " percentage points" +
        (normalized ? "" : " of the spike total")));
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
        "spikeTotal": graph.spike_total,
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
<script>{_SCRIPT}</script>
</body>
</html>
"""
