"""Benchmark: spikeprof's pprof analysis against `go tool pprof -top`, on big profiles.

    .venv/bin/python bench/pprof_analysis.py [--samples 150000] [--repeat 5]

tools/pprof-synth writes a CPU-like and a heap-like profile with --samples distinct stacks each
(through github.com/google/pprof, as Go programs write them). For each profile, --repeat rounds,
each running these processes one after the other (side by side in time, so a busy machine
slows all of them alike):

- pprof: the binary `go tool pprof` runs (found with `go tool -n pprof`, so the go command's own
  start-up is not counted against it) printing `-top`;
- ours: a fresh Python process that imports spikeprof.pprof, decodes the file and summarises
  every sample type (what goes into metadata.json), then exits: the same job, start to end;
- ours + flame graph: the same, then the flame graph page as the operator writes it.

Each process is measured whole by os.wait4 (wall, CPU, peak RSS); the Python ones also time
their stages (import, decode, summary, flame graph) inside. Figures are the medians over the
rounds. The ratios are ours / pprof's (below 1: faster, or less memory). Results go to
bench/results/pprof_analysis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK = REPO_ROOT / "build" / "pprof-bench"  # the synthesizer and its profiles, reused
KINDS = ("cpu", "heap")


def measure_ours(path: Path, flamegraph: bool) -> dict[str, Any]:
    """Runs in the child process: each stage's wall and CPU seconds, and the peak RSS so far."""
    stages: dict[str, Any] = {}

    def timed(name: str, work: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        stages[name] = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        return result

    modules = timed("import", _import_pprof)
    decoded = timed("decode", lambda: modules["profile"].decode_file(path))
    timed("summary", lambda: modules["summary"].summarize(decoded).to_json())
    report: dict[str, Any] = {
        "stages": stages,
        "samples": decoded.sample_count,
        "location_refs": len(decoded.stack_locations),
        "locations": len(decoded.locations),
        "functions": len(decoded.functions),
    }
    if flamegraph:
        page = timed("flamegraph", lambda: modules["flamegraph_page"].render_flamegraph(decoded))
        report["flamegraph_bytes"] = len(page.encode())
    return report


def _import_pprof() -> dict[str, Any]:
    # decode_upb brings numpy and protobuf, which the modules import only when first used.
    from spikeprof.pprof import decode_upb, flamegraph_page, profile, summary, wire_schema

    wire_schema.profile_message()  # the message types, built from profile.binpb on first use
    del decode_upb
    return {"profile": profile, "summary": summary, "flamegraph_page": flamegraph_page}


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
    binary = WORK / "bin" / "pprof-synth"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=REPO_ROOT / "tools" / "pprof-synth", check=True
    )
    return binary


def synthesize(binary: Path, kind: str, samples: int) -> Path:
    path = WORK / "profiles" / f"synth-{kind}-{samples}.pb.gz"
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


def median_of(runs: list[dict[str, Any]], *keys: str) -> float:
    def pick(run: dict[str, Any]) -> float:
        value: Any = run
        for key in keys:
            value = value[key]
        return float(value)

    return statistics.median(pick(run) for run in runs)


def bench_profile(path: Path, pprof: str, repeat: int) -> dict[str, Any]:
    go_runs: list[dict[str, Any]] = []
    top_runs: list[dict[str, Any]] = []
    flame_runs: list[dict[str, Any]] = []
    me = [sys.executable, __file__, "--measure", str(path)]
    for _ in range(repeat):
        go_runs.append(run_measured([pprof, "-top", str(path)], capture=False)[1])
        for runs, args in ((top_runs, me), (flame_runs, [*me, "--flamegraph"])):
            output, usage = run_measured(args, capture=True)
            report = json.loads(output)
            report["process"] = usage
            runs.append(report)

    go = {key: median_of(go_runs, key) for key in ("wall_s", "cpu_s", "peak_rss_mib")}
    ours = {key: median_of(top_runs, "process", key) for key in ("wall_s", "cpu_s", "peak_rss_mib")}
    with_flame = {
        key: median_of(flame_runs, "process", key) for key in ("wall_s", "cpu_s", "peak_rss_mib")
    }
    stages = {
        stage: {key: median_of(flame_runs, "stages", stage, key) for key in ("wall_s", "cpu_s")}
        for stage in ("import", "decode", "summary", "flamegraph")
    }
    last = flame_runs[-1]
    return {
        "file": str(path.relative_to(REPO_ROOT)),
        "compressed_bytes": path.stat().st_size,
        "samples": last["samples"],
        "location_refs": last["location_refs"],
        "locations": last["locations"],
        "functions": last["functions"],
        "flamegraph_bytes": last["flamegraph_bytes"],
        "go_tool_pprof_top": go,
        "ours_decode_summary": ours,
        "ours_with_flamegraph": with_flame,
        "ours_stages": stages,
        "ratio_vs_go": {
            "wall": ours["wall_s"] / go["wall_s"],
            "cpu": ours["cpu_s"] / go["cpu_s"],
            "peak_rss": ours["peak_rss_mib"] / go["peak_rss_mib"],
            "with_flamegraph_wall": with_flame["wall_s"] / go["wall_s"],
        },
        "runs": {
            "go_tool_pprof_top": go_runs,
            "ours": top_runs,
            "ours_with_flamegraph": flame_runs,
        },
    }


def print_report(kind: str, result: dict[str, Any]) -> None:
    go, ours, ratio = (
        result["go_tool_pprof_top"],
        result["ours_decode_summary"],
        result["ratio_vs_go"],
    )
    stages = result["ours_stages"]
    print(
        f"\n{kind}: {result['file']} ({result['compressed_bytes'] / (1 << 20):.1f} MiB gzipped, "
        f"{result['samples']} samples, {result['location_refs']} location refs, "
        f"{result['locations']} locations, {result['functions']} functions)"
    )
    print(
        f"  pprof -top            {go['wall_s']:.2f}s wall, {go['cpu_s']:.2f}s CPU,"
        f" peak RSS {go['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"  ours decode+summary   {ours['wall_s']:.2f}s wall, {ours['cpu_s']:.2f}s CPU,"
        f" peak RSS {ours['peak_rss_mib']:.0f} MiB  (in-process: import"
        f" {stages['import']['wall_s']:.2f}s, decode {stages['decode']['wall_s']:.2f}s,"
        f" summary {stages['summary']['wall_s']:.2f}s)"
    )
    print(
        f"  flame graph           {stages['flamegraph']['wall_s'] * 1000:.0f} ms"
        f" ({result['flamegraph_bytes'] / 1024:.0f} KiB); whole process"
        f" {result['ours_with_flamegraph']['wall_s']:.2f}s"
    )
    print(
        f"  ratio vs pprof -top   {ratio['wall']:.2f}x wall, {ratio['cpu']:.2f}x CPU,"
        f" {ratio['peak_rss']:.2f}x peak RSS; with the flame graph"
        f" {ratio['with_flamegraph_wall']:.2f}x wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=150_000, help="distinct stacks per profile")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flamegraph", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_ours(args.measure, args.flamegraph)))
        return

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import harness  # the control plane's kit: imported by the parent only

    synth = build_synth()
    pprof = pprof_binary()
    profiles: dict[str, Any] = {}
    load_at_start = os.getloadavg()
    for kind in KINDS:
        path = synthesize(synth, kind, args.samples)
        profiles[kind] = bench_profile(path, pprof, args.repeat)
        print_report(kind, profiles[kind])
    cpu, heap = profiles["cpu"], profiles["heap"]
    results: dict[str, Any] = {
        "benchmark": "pprof_analysis",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "samples_per_profile": args.samples,
        "repeat": args.repeat,
        # The goals' figures (issue 16): decode + top of the CPU and heap profiles, each a fresh
        # process start to end, against `go tool pprof -top`'s, medians of side-by-side runs.
        "cpu_ratio_vs_go": cpu["ratio_vs_go"]["wall"],
        "heap_ratio_vs_go": heap["ratio_vs_go"]["wall"],
        "peak_rss_mib": cpu["ours_decode_summary"]["peak_rss_mib"],
        "go_peak_rss_mib": cpu["go_tool_pprof_top"]["peak_rss_mib"],
        "heap_peak_rss_mib": heap["ours_decode_summary"]["peak_rss_mib"],
        "heap_go_peak_rss_mib": heap["go_tool_pprof_top"]["peak_rss_mib"],
        "cpu_wall_s": cpu["ours_decode_summary"]["wall_s"],
        "cpu_go_wall_s": cpu["go_tool_pprof_top"]["wall_s"],
        "heap_wall_s": heap["ours_decode_summary"]["wall_s"],
        "heap_go_wall_s": heap["go_tool_pprof_top"]["wall_s"],
        # The flame graph apart: its stage alone, and the whole process with it against pprof.
        "flamegraph_ms": cpu["ours_stages"]["flamegraph"]["wall_s"] * 1000,
        "heap_flamegraph_ms": heap["ours_stages"]["flamegraph"]["wall_s"] * 1000,
        "flamegraph_ratio_vs_go": cpu["ratio_vs_go"]["with_flamegraph_wall"],
        "heap_flamegraph_ratio_vs_go": heap["ratio_vs_go"]["with_flamegraph_wall"],
        "profiles": profiles,
    }
    out = harness.save("pprof_analysis", results)
    print(f"\nwritten to {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
