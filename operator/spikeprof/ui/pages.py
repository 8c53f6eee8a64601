"""The UI's pages as HTML, from captures the server has read: pure, no I/O.

Every value goes through markup.render, so names from the cluster show as text. The pages
carry no script at all (the server's Content-Security-Policy forbids one); the flame graphs
are the operator's own self-contained pages, served as they were written.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from spikeprof.core import catalog, ui_routes
from spikeprof.core.catalog import Capture
from spikeprof.pprof import units
from spikeprof.pprof.diff import ProfileDiff
from spikeprof.ui.markup import Markup, join, render

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 24px;
  align-items: baseline; }
header a { color: #fff; text-decoration: none; } header b { font-size: 17px; }
main { padding: 16px 24px; }
h1 { font-size: 20px; margin: 4px 0 12px; word-break: break-all; }
h2 { font-size: 16px; margin: 22px 0 8px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 14px; }
th, td { border: 1px solid #dde1e6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; word-break: break-all; }
form.filter { display: flex; gap: 8px; flex-wrap: wrap; align-items: end; margin-bottom: 10px; }
form.filter label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
.failed { color: #b3261e; } .ok { color: #1e7b34; } .muted { color: #666; }
.problem { background: #fff4e5; border: 1px solid #f0c27b; padding: 6px 10px; }
.actions a { margin-right: 14px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 0; }
dt { color: #555; } dd { margin: 0; word-break: break-all; }
iframe { width: 100%; height: 560px; border: 1px solid #dde1e6; background: #fff; }
"""


def capture_url(capture: Capture) -> str:
    return ui_routes.capture_path(*capture.key.parts)


def file_url(capture: Capture, name: str) -> str:
    return ui_routes.file_path(*capture.key.parts, name)


def diff_url(spike: Capture, base_id: str, type_: str | None = None) -> str:
    """The diff page of two captures of the same pod: /diff/<ns>/<session>/<pod>/<base>/<spike>."""
    query = f"?{urlencode({'type': type_})}" if type_ else ""
    return ui_routes.path("diff", *spike.key.parts[:3], base_id, spike.key.capture_id) + query


def diff_flamegraph_url(spike: Capture, base_id: str, type_: str) -> str:
    parts = (*spike.key.parts[:3], base_id, spike.key.capture_id)
    return ui_routes.path("diff-flamegraph", *parts) + f"?{urlencode({'type': type_})}"


def captures_url(**filters: str) -> str:
    return ui_routes.captures_path(**filters)


def document(title: str, body: Markup) -> Markup:
    return render(
        """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · spikeprof</title><style>{style}</style></head>
<body><header><b><a href="/">spikeprof</a></b><a href="/">Sessions</a>
<a href="/captures">Captures</a><span class="muted">read-only</span></header>
<main>{body}</main></body></html>
""",
        title=title,
        style=Markup(STYLE),
        body=body,
    )


def error_page(title: str, sentence: str) -> Markup:
    return document(
        title,
        render(
            '<h1>{title}</h1><p class="problem">{sentence}</p><p><a href="/">Back to the '
            "sessions</a></p>",
            title=title,
            sentence=sentence,
        ),
    )


def _problems(problems: Sequence[str]) -> Markup:
    return join(render('<p class="problem">{problem}</p>', problem=p) for p in problems)


@dataclass(frozen=True, slots=True)
class SessionRow:
    namespace: str
    session: str
    captures: int
    pods: int
    failed: int
    last: datetime.datetime


def session_rows(captures: Sequence[Capture]) -> list[SessionRow]:
    grouped: dict[tuple[str, str], list[Capture]] = {}
    for capture in captures:
        grouped.setdefault((capture.key.namespace, capture.key.session), []).append(capture)
    return [
        SessionRow(
            namespace=namespace,
            session=session,
            captures=len(found),
            pods=len({c.key.pod for c in found}),
            failed=sum(1 for c in found if any(p.failure for p in c.profiles)),
            last=max(c.time for c in found),
        )
        for (namespace, session), found in sorted(grouped.items())
    ]


def sessions_page(captures: Sequence[Capture], problems: Sequence[str], where: str) -> Markup:
    rows = session_rows(captures)
    body = [
        render(
            "<h1>Sessions</h1><p class=muted>Captures in <code>{where}</code>.</p>", where=where
        ),
        _problems(problems),
    ]
    if not rows:
        body.append(Markup("<p>No captures yet.</p>"))
    else:
        body.append(
            Markup(
                "<table id=sessions><tr><th>Namespace</th><th>Session</th><th>Captures</th>"
                "<th>Pods</th><th>With failures</th><th>Last capture</th></tr>"
            )
        )
        body.extend(
            render(
                '<tr><td>{namespace}</td><td><a href="{url}">{session}</a></td>'
                "<td class=n>{count}</td><td class=n>{pods}</td><td class=n>{failed}</td>"
                "<td>{last}</td></tr>",
                namespace=row.namespace,
                session=row.session,
                url=captures_url(namespace=row.namespace, session=row.session),
                count=row.captures,
                pods=row.pods,
                failed=row.failed,
                last=catalog.format_utc(row.last),
            )
            for row in rows
        )
        body.append(Markup("</table>"))
    return document("Sessions", join(body))


FILTER_FIELDS = (
    ("namespace", "Namespace", ""),
    ("session", "Session", ""),
    ("pod", "Pod", ""),
    ("trigger", "Trigger", "immediate, threshold, alert"),
    ("since", "Since", "1h, 2d or 2026-11-26T01:00:00Z"),
    ("until", "Until", "an age or a time"),
)


def _profiles_cell(capture: Capture) -> Markup:
    return join(
        (
            render('<span class="failed">{type} failed</span>', type=p.type)
            if p.failure
            else render("<span>{type}</span>", type=p.type)
        )
        for p in capture.profiles
    )


def captures_page(
    captures: Sequence[Capture],
    filters: Mapping[str, str],
    problems: Sequence[str],
) -> Markup:
    inputs = join(
        render(
            '<label>{label}<input name="{name}" value="{value}" placeholder="{hint}"></label>',
            label=label,
            name=name,
            value=filters.get(name, ""),
            hint=hint,
        )
        for name, label, hint in FILTER_FIELDS
    )
    body = [
        Markup("<h1>Captures</h1>"),
        render(
            '<form class="filter" method="get" action="/captures">{inputs}'
            '<button type="submit" id="apply">Filter</button> <a href="/captures">Clear</a></form>',
            inputs=inputs,
        ),
        _problems(problems),
        render("<p class=muted>{count} capture(s), newest first.</p>", count=len(captures)),
    ]
    if captures:
        body.append(
            Markup(
                "<table id=captures><tr><th>Time (UTC)</th><th>Namespace</th><th>Session</th>"
                "<th>Pod</th><th>Trigger</th><th>Reason</th><th>Profiles</th><th>Size</th></tr>"
            )
        )
        body.extend(
            render(
                '<tr><td><a class="capture" href="{url}">{time}</a></td><td>{namespace}</td>'
                "<td>{session}</td><td>{pod}</td><td>{trigger}</td><td>{reason}</td>"
                "<td>{profiles}</td><td class=n>{size}</td></tr>",
                url=capture_url(c),
                time=catalog.format_utc(c.time),
                namespace=c.key.namespace,
                session=c.key.session,
                pod=c.key.pod,
                trigger=c.trigger,
                reason=c.reason,
                profiles=_profiles_cell(c),
                size=units.scaled_label(c.total_bytes, "bytes"),
            )
            for c in reversed(captures)
        )
        body.append(Markup("</table>"))
    return document("Captures", join(body))


def _top_table(summary: Mapping[str, Any], top: int) -> Markup:
    # The top of the default sample type, from metadata.json, as `go tool pprof -top` lays it.
    types = summary.get("sampleTypes") or []
    default = summary.get("defaultSampleType")
    chosen = next((t for t in types if t.get("type") == default), types[-1] if types else None)
    if not isinstance(chosen, Mapping):
        return Markup("<p class=muted>No summary.</p>")
    unit = str(chosen.get("unit", "")).lower()
    total = int(chosen.get("total", 0))
    rows = []
    running = 0
    for row in list(chosen.get("functions") or [])[:top]:
        flat, cum = int(row.get("flat", 0)), int(row.get("cum", 0))
        running += flat
        rows.append(
            render(
                "<tr><td class=n>{flat}</td><td class=n>{flat_pct}</td><td class=n>{sum_pct}</td>"
                "<td class=n>{cum}</td><td class=n>{cum_pct}</td><td><code>{function}</code></td>"
                "</tr>",
                flat=units.scaled_label(flat, unit),
                flat_pct=units.percentage(flat, total).strip(),
                sum_pct=units.percentage(running, total).strip(),
                cum=units.scaled_label(cum, unit),
                cum_pct=units.percentage(cum, total).strip(),
                function=row.get("function", ""),
            )
        )
    return render(
        "<p class=muted>{type}: {total} total, {count} functions; top {shown}.</p>"
        '<table class="top"><tr><th>flat</th><th>flat%</th><th>sum%</th><th>cum</th>'
        "<th>cum%</th><th>function</th></tr>{rows}</table>",
        type=chosen.get("type", ""),
        total=units.scaled_label(total, unit),
        count=chosen.get("functionCount", len(rows)),
        shown=len(rows),
        rows=join(rows),
    )


@dataclass(frozen=True, slots=True)
class Neighbours:
    """What the capture page links to: the same pod's baseline and previous captures, and the
    other pods captured by the same trigger."""

    baseline_id: str | None
    previous_id: str | None
    same_trigger: Sequence[Capture]


def _diff_links(capture: Capture, type_: str, neighbours: Neighbours) -> Markup:
    links = []
    for label, other, css in (
        ("against baseline", neighbours.baseline_id, "vs-baseline"),
        ("against previous", neighbours.previous_id, "vs-previous"),
    ):
        if other is None or other == capture.key.capture_id:
            continue
        links.append(
            render(
                '<a class="{css}" href="{url}">Diff {label}</a>',
                css=css,
                url=diff_url(capture, other, type_),
                label=label,
            )
        )
    return join(links, " ")


def _growth_section(growth: Mapping[str, Any], top: int) -> Markup:
    """A leak pair: the allocation sites whose in-use bytes grew most, or why there is none."""
    missing = growth.get("missing")
    if isinstance(missing, Mapping):
        return render(
            '<p class="muted" id="leak-pair">Leak pair: no second profile. {reason}: {message}</p>',
            reason=str(missing.get("reason")),
            message=str(missing.get("message")),
        )
    if "error" in growth:
        return render(
            '<p class="muted" id="leak-pair">Leak pair: growth not computed: {error}</p>',
            error=str(growth["error"]),
        )
    unit = str(growth.get("unit", "bytes"))
    rows = join(
        render(
            "<tr><td class=n>+{growth}</td><td class=n>{before}</td><td class=n>{after}</td>"
            "<td>{function}</td></tr>",
            growth=units.scaled_label(int(row.get("growth", 0)), unit),
            before=units.scaled_label(int(row.get("before", 0)), unit),
            after=units.scaled_label(int(row.get("after", 0)), unit),
            function=str(row.get("function")),
        )
        for row in list(growth.get("top") or [])[:top]
    )
    return render(
        '<p id="leak-pair">Leak pair: in-use bytes grew by {growth} in {seconds}s '
        "({second})</p><table><tr><th>Growth</th><th>Before</th><th>After</th>"
        "<th>Allocation site</th></tr>{rows}</table>",
        growth=units.scaled_label(int(growth.get("growth", 0)), unit),
        seconds=f"{float(growth.get('measuredSeconds') or growth.get('seconds') or 0):g}",
        second=str(growth.get("secondFile", "")),
        rows=rows,
    )


def capture_page(capture: Capture, neighbours: Neighbours, top: int) -> Markup:
    key = capture.key
    pods = join(
        (
            render("<b>{pod}</b>", pod=key.pod)
            if c.key == key
            else render('<a href="{url}">{pod}</a>', url=capture_url(c), pod=c.key.pod)
        )
        for c in neighbours.same_trigger
    )
    body = [
        render("<h1>{ref}</h1>", ref=key.relative_path),
        render(
            "<dl><dt>Namespace</dt><dd>{namespace}</dd><dt>Session</dt><dd>{session}</dd>"
            "<dt>Pods</dt><dd>{pods}</dd><dt>Node</dt><dd>{node}</dd>"
            "<dt>Trigger</dt><dd id=trigger>{trigger}</dd>"
            "<dt>Reason</dt><dd id=reason>{reason}</dd>"
            "<dt>Requested</dt><dd>{time}</dd><dt>Finished</dt><dd>{finished}</dd></dl>",
            namespace=key.namespace,
            session=key.session,
            pods=pods,
            node=capture.node or "-",
            trigger=capture.trigger,
            reason=capture.reason or "-",
            time=catalog.format_utc(capture.time),
            finished=capture.finished_at or "-",
        ),
    ]
    for profile in capture.profiles:
        body.append(render('<h2 id="profile-{type}">{type}</h2>', type=profile.type))
        if profile.failure:
            body.append(render('<p class="failed">Failed: {failure}</p>', failure=profile.failure))
            continue
        actions = []
        if profile.flamegraph and profile.flamegraph in capture.files:
            actions.append(
                render(
                    '<a class="flamegraph" href="{url}">Flame graph</a>',
                    url=file_url(capture, profile.flamegraph),
                )
            )
        growth_page = profile.growth.get("flamegraph") if profile.growth else None
        if isinstance(growth_page, str) and growth_page in capture.files:
            actions.append(
                render(
                    '<a class="growth" href="{url}">Growth flame graph (leak pair)</a>',
                    url=file_url(capture, growth_page),
                )
            )
        if profile.file and profile.file.endswith(catalog.PPROF_FILE_SUFFIX):
            actions.append(_diff_links(capture, profile.type, neighbours))
        body.append(render('<p class="actions">{links}</p>', links=join(actions, " ")))
        if profile.growth is not None:
            body.append(_growth_section(profile.growth, top))
        if profile.empty_reason is not None:
            body.append(render("<p class=muted>Empty: {why}</p>", why=profile.empty_reason))
        elif profile.summary is not None:
            body.append(_top_table(profile.summary, top))
    sha = catalog.checksums(capture)
    body.append(
        Markup("<h2>Files</h2><table id=files><tr><th>File</th><th>Size</th><th>sha256</th></tr>")
    )
    body.extend(
        render(
            '<tr><td><a class="download" href="{url}">{name}</a></td><td class=n>{size}</td>'
            '<td class="mono">{sha}</td></tr>',
            url=file_url(capture, name),
            name=name,
            size=units.scaled_label(size, "bytes"),
            sha=sha.get(name, "-"),
        )
        for name, size in sorted(capture.files.items())
    )
    body.append(Markup("</table>"))
    return document(key.relative_path, join(body))


def _delta_rows(result: ProfileDiff, rows: Sequence[Any]) -> Markup:
    unit = result.sample_type.unit

    def signed(value: int) -> str:
        return ("+" if value > 0 else "") + units.scaled_label(value, unit)

    if not rows:
        return Markup('<tr><td colspan="5" class="muted">none</td></tr>')
    return join(
        render(
            "<tr><td><code>{function}</code></td><td class=n>{base}</td><td class=n>{spike}</td>"
            "<td class=n>{delta}</td><td class=n>{share}</td></tr>",
            function=row.function,
            base=units.scaled_label(row.base_cum, unit),
            spike=units.scaled_label(row.spike_cum, unit),
            delta=signed(row.cum_delta),
            share=f"{row.cum_share_delta * 100:+.1f} pts",
        )
        for row in rows
    )


def diff_page(
    base: Capture,
    spike: Capture,
    type_: str,
    types: Sequence[str],
    result: ProfileDiff,
    top: int,
) -> Markup:
    heading = (
        "<tr><th>function</th><th>base cum</th><th>spike cum</th><th>change</th>"
        "<th>share change</th></tr>"
    )
    switch = join(
        render('<a href="{url}">{type}</a>', url=diff_url(spike, base.key.capture_id, t), type=t)
        for t in types
        if t != type_
    )
    body = render(
        "<h1>{type} of {pod}: {spike_id} against {base_id}</h1>"
        '<p>Base: <a href="{base_url}">{base_ref}</a> ({base_trigger})<br>'
        'Spike: <a href="{spike_url}">{spike_ref}</a> ({spike_trigger})</p>'
        "<p class=muted>{sample}: base {base_total}, spike {spike_total}; ranked by change of "
        "cum as a share of each total. Other types: {switch}</p>"
        '<h2>Top gainers</h2><table id="gainers">{heading}{gainers}</table>'
        '<h2>Top losers</h2><table id="losers">{heading}{losers}</table>'
        '<h2>Differential flame graph</h2><p><a id="diff-flamegraph" href="{graph}">Open it on its '
        "own</a>: red grew, blue shrank.</p>"
        '<iframe title="differential flame graph" src="{graph}"></iframe>',
        type=type_,
        pod=spike.key.pod,
        spike_id=spike.key.capture_id,
        base_id=base.key.capture_id,
        base_url=capture_url(base),
        base_ref=base.key.relative_path,
        base_trigger=base.trigger,
        spike_url=capture_url(spike),
        spike_ref=spike.key.relative_path,
        spike_trigger=spike.trigger,
        sample=result.sample_type.type,
        base_total=units.scaled_label(result.base_total, result.sample_type.unit),
        spike_total=units.scaled_label(result.spike_total, result.sample_type.unit),
        switch=switch or Markup("none"),
        heading=Markup(heading),
        gainers=_delta_rows(result, result.gainers(top)),
        losers=_delta_rows(result, result.losers(top)),
        graph=diff_flamegraph_url(spike, base.key.capture_id, type_),
    )
    return document(f"{type_} diff of {spike.key.pod}", body)
