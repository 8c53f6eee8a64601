"""Benchmark: spikeprof's pure-Python pprof analysis against `go tool pprof -top`, on big profiles.

    .venv/bin/python bench/pprof_analysis.py [--samples 150000] [--repeat 3]

tools/pprof-synth writes a CPU-like and a heap-like profile with --samples distinct stacks each
(through github.com/google/pprof, as Go programs write them). For each profile:

- ours: decode + summary of every sample type (what goes into metadata.json) + flame graph, each
  stage timed inside a fresh Python process (wall and CPU time), with the process's peak RSS, and,
  in a separate run, the peak of Python allocations (tracemalloc slows the code it watches);
- pprof: the binary `go tool pprof` runs (found with `go tool -n pprof`, so the go command's own
  start-up is not counted against it) printing `-top`: wall, CPU and peak RSS.

Each is run --repeat times and the fastest run kept: the machine may be busy with other work.
Figures are printed and written to bench/results/pprof_analysis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
KINDS = ("cpu", "heap")


def measure_ours(path: Path, trace_memory: bool) -> dict[str, Any]:
    """Runs in the child process: each stage's wall and CPU seconds (and traced peak, if asked)."""
    from spikeprof.pprof import flamegraph_page, profile, summary

    if trace_memory:
        tracemalloc.start()
    stages: dict[str, Any] = {}

    def timed(name: str, work: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        stages[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        return result

    decoded = timed("decode", lambda: profile.decode_file(path))
    timed("summary", lambda: summary.summarize(decoded).to_json())
    page = timed("flamegraph", lambda: flamegraph_page.render_flamegraph(decoded))
    report: dict[str, Any] = {
        "stages": stages,
        "samples": len(decoded.samples),
        "locations": len(decoded.locations),
        "functions": len(decoded.functions),
        "frames_in_stacks": sum(len(sample.location_ids) for sample in decoded.samples),
        "flamegraph_bytes": len(page.encode()),
    }
    if trace_memory:
        report["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    return report


def run_measured(args: list[str], *, capture: bool) -> tuple[str, dict[str, float]]:
    # os.wait4 gives one child's own CPU time and peak RSS, not the sum over all children.
    started = time.perf_counter()
    child = subprocess.Popen(
        args, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    output = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited with {child.returncode}")
    return output.decode(), {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def build_synth() -> Path:
    binary = RESULTS / "bin" / "pprof-synth"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=REPO_ROOT / "tools" / "pprof-synth", check=True
    )
    return binary


def synthesize(binary: Path, kind: str, samples: int) -> Path:
    path = RESULTS / "profiles" / f"synth-{kind}-{samples}.pb.gz"
    if not path.exists():  # the output depends only on the flags: reuse it
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(binary), f"-kind={kind}", f"-samples={samples}", f"-out={path}"], check=True
        )
    return path


def pprof_binary() -> str:
    found = subprocess.run(
        ["go", "tool", "-n", "pprof"], capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def fastest(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return min(runs, key=lambda run: run[key])


def bench_profile(path: Path, pprof: str, repeat: int) -> dict[str, Any]:
    ours_runs = []
    for _ in range(repeat):
        output, usage = run_measured(
            [sys.executable, __file__, "--measure", str(path)], capture=True
        )
        report = json.loads(output)
        stages = report["stages"]
        report["analysis_wall_s"] = stages["decode"]["wall_s"] + stages["summary"]["wall_s"]
        report["analysis_cpu_s"] = stages["decode"]["cpu_s"] + stages["summary"]["cpu_s"]
        report["with_flamegraph_wall_s"] = (
            report["analysis_wall_s"] + stages["flamegraph"]["wall_s"]
        )
        report["with_flamegraph_cpu_s"] = report["analysis_cpu_s"] + stages["flamegraph"]["cpu_s"]
        report["process"] = usage
        ours_runs.append(report)
    ours = fastest(ours_runs, "analysis_wall_s")
    traced, _ = run_measured(
        [sys.executable, __file__, "--measure", str(path), "--trace-memory"], capture=True
    )
    ours["tracemalloc_peak_mib"] = json.loads(traced)["tracemalloc_peak_bytes"] / (1 << 20)

    pprof_runs = [run_measured([pprof, "-top", str(path)], capture=False)[1] for _ in range(repeat)]
    theirs = fastest(pprof_runs, "wall_s")
    return {
        "file": str(path.relative_to(REPO_ROOT)),
        "compressed_bytes": path.stat().st_size,
        "ours": ours,
        "go_tool_pprof_top": theirs,
        "ratio": {
            "decode_summary_vs_pprof_top_wall": ours["analysis_wall_s"] / theirs["wall_s"],
            "decode_summary_vs_pprof_top_cpu": ours["analysis_cpu_s"] / theirs["cpu_s"],
            "with_flamegraph_vs_pprof_top_wall": ours["with_flamegraph_wall_s"] / theirs["wall_s"],
            "peak_rss_vs_pprof_top": ours["process"]["peak_rss_mib"] / theirs["peak_rss_mib"],
        },
    }


def print_report(kind: str, result: dict[str, Any]) -> None:
    ours, theirs, ratio = result["ours"], result["go_tool_pprof_top"], result["ratio"]
    decode, summary, flame = (
        ours["stages"][s]["wall_s"] for s in ("decode", "summary", "flamegraph")
    )
    print(
        f"\n{kind}: {result['file']} ({result['compressed_bytes'] / (1 << 20):.1f} MiB gzipped, "
        f"{ours['samples']} samples, {ours['frames_in_stacks']} location refs, "
        f"{ours['locations']} locations, {ours['functions']} functions)"
    )
    print(
        f"  ours   decode {decode:.2f}s  summary {summary:.2f}s  flame graph {flame:.2f}s"
        f" ({ours['flamegraph_bytes'] / 1024:.0f} KiB)"
        f"  | peak RSS {ours['process']['peak_rss_mib']:.0f} MiB,"
        f" Python heap peak {ours['tracemalloc_peak_mib']:.0f} MiB"
    )
    print(
        f"  pprof  -top {theirs['wall_s']:.2f}s wall, {theirs['cpu_s']:.2f}s CPU"
        f"  | peak RSS {theirs['peak_rss_mib']:.0f} MiB"
    )
    print(
        "  ratio  decode+summary / pprof -top: "
        f"{ratio['decode_summary_vs_pprof_top_wall']:.2f}x wall,"
        f" {ratio['decode_summary_vs_pprof_top_cpu']:.2f}x CPU;"
        f" with flame graph {ratio['with_flamegraph_vs_pprof_top_wall']:.2f}x wall;"
        f" peak RSS {ratio['peak_rss_vs_pprof_top']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=150_000, help="distinct stacks per profile")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the fastest kept")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_ours(args.measure, args.trace_memory)))
        return

    synth = build_synth()
    pprof = pprof_binary()
    results: dict[str, Any] = {
        "benchmark": "pprof_analysis",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "samples_per_profile": args.samples,
        "repeat": args.repeat,
        "profiles": {},
    }
    for kind in KINDS:
        path = synthesize(synth, kind, args.samples)
        results["profiles"][kind] = bench_profile(path, pprof, args.repeat)
        print_report(kind, results["profiles"][kind])
    results["load_average_at_end"] = os.getloadavg()
    out = RESULTS / "pprof_analysis.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
