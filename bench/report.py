"""One table of the benchmarks' figures next to their goals, read from bench/results/*.json.

A result file that is missing says "not run"; a key a file lacks says "n/a". `make bench` ends
with it; it can be run alone after any benchmark.

    python bench/report.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Result = dict[str, Any]


class MissingFigureError(Exception):
    """A figure the result file does not have."""


def pick(data: Result, *keys: str, scale: float = 1.0) -> float:
    """The first of `keys` the result has (times `scale`)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, int | float):
            return float(value) * scale
    raise MissingFigureError(" or ".join(keys))


def run_where(data: Result, key: str, value: float) -> Result:
    """The entry of data["runs"] whose `key` is `value` (the top level when it is that one)."""
    for run in data.get("runs") or []:
        if isinstance(run, dict) and run.get(key) == value:
            return run
    if data.get(key) == value:
        return data
    raise MissingFigureError(f"run with {key} {value:g}")


@dataclass(frozen=True)
class Row:
    path: str
    file: str
    goal: str
    # (figure as read, whether the goal is met; None when the goal is to report it)
    read: Callable[[Result], tuple[str, bool | None]]


def _alerts(rate: float, bounded: bool) -> Callable[[Result], tuple[str, bool | None]]:
    def read(data: Result) -> tuple[str, bool | None]:
        run = run_where(data, "rate", rate)
        p50, p99 = pick(run, "p50_ms"), pick(run, "p99_ms")
        missed = int(pick(run, "missed"))
        api = run.get("apiserver_requests_per_s")
        figure = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, missed {missed}"
        if run.get("late"):  # first request not seen within one round of the pods
            figure += f", late {run['late']}"
        if api is not None:
            figure += f", API server {api} req/s"
        met = missed == 0 and (not bounded or (p50 <= 20 and p99 <= 50))
        return figure, met

    return read


def _evaluation(
    pods: int, cpu_ms: float | None, rss_mib: float | None
) -> Callable[[Result], tuple[str, bool | None]]:
    def read(data: Result) -> tuple[str, bool | None]:
        run = run_where(data, "pods", pods)
        cpu = pick(run, "cpu_ms_per_cycle") if "cpu_ms_per_cycle" in run else None
        if cpu is None:
            cpu = pick(run, "cpu_s_per_cycle", scale=1000)
        rss = pick(run, "rss_mib", "session_rss_mib")
        figure = f"{cpu:.1f} ms CPU per cycle, RSS {rss:.0f} MiB"
        if cpu_ms is None or rss_mib is None:
            return figure, None
        return figure, cpu <= cpu_ms and rss <= rss_mib

    return read


def _pprof(kind: str) -> Callable[[Result], tuple[str, bool | None]]:
    def read(data: Result) -> tuple[str, bool | None]:
        ratio = pick(data, f"{kind}_ratio_vs_go")
        prefix = "" if kind == "cpu" else "heap_"
        peak = pick(data, f"{prefix}peak_rss_mib")
        go_peak = pick(data, f"{prefix}go_peak_rss_mib")
        figure = f"{ratio:.2f}x go's wall, peak RSS {peak:.0f} MiB (go {go_peak:.0f} MiB)"
        if kind == "cpu" and "flamegraph_ms" in data:
            figure += f", flame graph {pick(data, 'flamegraph_ms'):.0f} ms"
        return figure, ratio <= 0.5 and peak <= go_peak

    return read


def _fanout(data: Result) -> tuple[str, bool | None]:
    growth, wall = pick(data, "rss_growth_mib"), pick(data, "wall_s")
    figure = f"RSS +{growth:.1f} MiB, wall {wall:.1f} s"
    if "apiserver_cpu_s" in data:
        figure += f", API server CPU {pick(data, 'apiserver_cpu_s'):.1f} s"
    return figure, growth <= 50 and wall <= 12


def _spike(data: Result) -> tuple[str, bool | None]:
    p50 = pick(data, "scrape_p50_s")
    figure = f"p50 {p50:.2f} s, max {pick(data, 'scrape_max_s'):.2f} s"
    return figure, p50 < 1.0


def _failover(data: Result) -> tuple[str, bool | None]:
    parts = []
    for key, name in (("readySeconds", "ready"), ("firstStatusWriteSeconds", "first write")):
        figures = data.get(key)
        if not isinstance(figures, dict):
            raise MissingFigureError(key)
        parts.append(f"{name} p50 {pick(figures, 'p50'):.1f} s, max {pick(figures, 'max'):.1f} s")
    kills = data.get("kills")
    return "; ".join(parts) + (f" ({kills} kills)" if kills else ""), None


ROWS = (
    Row(
        "alert -> first profile request, 50 alerts/s, 100 pods",
        "alert_latency",
        "p50 <= 20 ms, p99 <= 50 ms, 0 missed",
        _alerts(50, bounded=True),
    ),
    Row(
        "alert -> first profile request, 200 alerts/s, 100 pods",
        "alert_latency",
        "0 missed, p99 reported",
        _alerts(200, bounded=False),
    ),
    Row(
        "spike onset -> first profile request, scrape at 1 s",
        "spike_latency",
        "below the ~1.0 s measured before",
        _spike,
    ),
    Row(
        "one evaluation cycle, 1,000 pods (metricsServer)",
        "evaluation_cost",
        "<= 10 ms CPU, RSS <= 120 MiB",
        _evaluation(1000, 10, 120),
    ),
    Row(
        "one evaluation cycle, 10,000 pods (metricsServer)",
        "evaluation_cost",
        "<= 50 ms CPU, RSS <= 150 MiB",
        _evaluation(10000, 50, 150),
    ),
    Row(
        "one evaluation cycle, 30,000 pods (metricsServer)",
        "evaluation_cost",
        "reported",
        _evaluation(30000, None, None),
    ),
    Row(
        "decode + top-N of a 150k-sample CPU profile",
        "pprof_analysis",
        "<= 0.5x go tool pprof -top, peak RSS <= its",
        _pprof("cpu"),
    ),
    Row(
        "decode + top-N of a 150k-sample heap profile",
        "pprof_analysis",
        "<= 0.5x go tool pprof -top, peak RSS <= its",
        _pprof("heap"),
    ),
    Row(
        "one capture, 100 pods x (cpu 10 s + heap)",
        "capture_fanout",
        "RSS growth <= 50 MiB, wall <= 12 s",
        _fanout,
    ),
    Row("failover to a standby (#15)", "failover", "reported", _failover),
)


def table(results: Path) -> list[tuple[str, str, str, str]]:
    lines = []
    for row in ROWS:
        path = results / f"{row.file}.json"
        if not path.exists():
            figure, met = "not run", None
        else:
            try:
                figure, met = row.read(json.loads(path.read_text()))
            # An older or partial result file: say what it lacks, keep the table.
            except MissingFigureError as missing:
                figure, met = f"n/a (no {missing})", None
        verdict = "-" if met is None else ("yes" if met else "NO")
        lines.append((row.path, figure, row.goal, verdict))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = [("path", "figure", "goal", "met"), *table(args.results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    main()
