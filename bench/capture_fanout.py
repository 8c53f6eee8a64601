"""Fan-out: one capture of N pods at once, each a CPU profile (10 s) and a heap profile.

The pods are real pprof-target processes (the stand-in kubelet runs one per pod); the session
captures at once (trigger.immediate) with limits.maxConcurrent N, and the operator runs with
SPIKEPROF_MAX_CONCURRENT_PODS N, so that every pod is profiled at the same time.

Measured:
- operator RSS growth: its peak RSS during the capture (VmHWM, reset through
  /proc/<pid>/clear_refs just before) minus its RSS just before the session was created, after
  a one-pod capture has loaded what any first capture loads (pprof decoding, numpy); the growth
  from before that warm-up is reported too (rss_growth_cold_mib); the analysis worker processes
  (services.analysis) are measured the same way, each on its own, and their growth is added
  (rss_growth_mib is the operator's and the workers' together: peaks of different moments
  summed, an upper bound);
- wall: from the first profile request any pod saw (each pod's own clock) to the capture
  recorded as finished in status (polled every 50 ms);
- the API server's CPU seconds and requests from the session's creation to the end (its
  requests without the benchmark's own polling of the session).

    python bench/capture_fanout.py [--pods 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from apiserver import ApiServerMeter, difference
from harness import (
    control_plane,
    create_namespace,
    descendants,
    operator,
    rss_bytes,
    save,
    tree_cpu_seconds,
    wait,
)
from localcluster.sessions import (
    control,
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_running,
)

NAMESPACE = "fanout"
MIB = 1 << 20


def peak_rss(pid: int) -> int:
    """VmHWM: the highest RSS since the last reset (clear_refs 5)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """The highest RSS seen every 20 ms: a check on VmHWM where clear_refs is not allowed."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))


POLLS = [0]  # GET profilingsessions made by finished(): the benchmark's own requests


def finished(api: Any, name: str = "fanout") -> dict[str, Any] | None:
    POLLS[0] += 1
    status = get_session(api, NAMESPACE, name).get("status") or {}
    total = (status.get("captures") or {}).get("total", 0)
    return status if total >= 1 and not status.get("pendingCapture") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10, help="CPU profile duration")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-fanout-bench-"))
    with control_plane(workdir) as (plane, api):
        meter = ApiServerMeter(plane)
        create_namespace(api, NAMESPACE)
        for i in range(args.pods):
            create_pod(api, NAMESPACE, f"pod-{i:03d}", {"app": "fanout"})
        ips = wait_running(api, NAMESPACE, "app=fanout", args.pods, wait)
        create_pod(api, NAMESPACE, "warm-up", {"app": "warm-up"})
        wait_running(api, NAMESPACE, "app=warm-up", 1, wait)
        env = {"SPIKEPROF_MAX_CONCURRENT_PODS": str(args.pods)}
        with operator(plane, workdir, [NAMESPACE], env) as process:
            # Started, connected and watching the pods: what it holds before any capture.
            wait(lambda: "alerts on :" in process.log(), 60, "the operator started")
            time.sleep(3)
            rss_cold = rss_bytes(process.pid)
            warm_up = {
                "selector": {"matchLabels": {"app": "warm-up"}},
                "target": {"port": 7777},
                "profiles": [{"type": "cpu", "duration": "1s"}, {"type": "heap"}],
                "trigger": {"immediate": True},
                "output": {"volume": {}},
            }
            create_session(api, NAMESPACE, session_body("warm-up", warm_up))
            wait(lambda: finished(api, "warm-up"), 60, "the warm-up capture")
            time.sleep(1)
            for ip in ips.values():
                control(ip, "reset")
            spec = {
                "selector": {"matchLabels": {"app": "fanout"}},
                "target": {"port": 7777},
                "profiles": [{"type": "cpu", "duration": f"{args.seconds}s"}, {"type": "heap"}],
                "trigger": {"immediate": True},
                "limits": {"maxConcurrent": args.pods},
                "output": {"volume": {}},
            }
            rss_before = rss_bytes(process.pid)
            workers = descendants(process.pid)
            workers_before = sum(rss_bytes(pid) for pid in workers)
            for pid in (process.pid, *workers):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            sampler = RssSampler(process.pid)
            sampler.start()
            POLLS[0] = 0  # the polls of the measured capture are left out of its requests
            before, cpu = meter.read(), tree_cpu_seconds(process.pid)
            created = time.time()
            create_session(api, NAMESPACE, session_body("fanout", spec))
            status = wait(lambda: finished(api), 120, "the capture finished")
            done = time.time()
            after, cpu = meter.read(), tree_cpu_seconds(process.pid) - cpu
            sampler.done.set()
            sampler.join()
            peak = max(peak_rss(process.pid), sampler.peak)
            workers_peak = sum(peak_rss(pid) for pid in workers)
            firsts = [int(control(ip, "first-pprof-request").strip()) / 1e9 for ip in ips.values()]
            asked = [t for t in firsts if t]
    artifacts = workdir / "artifacts" / NAMESPACE / "fanout"
    profile_bytes = sum(p.stat().st_size for p in artifacts.rglob("*.pb.gz"))
    last = status.get("lastCapture") or {}
    result = {
        "pods": args.pods,
        "profiles_per_pod": ["cpu", "heap"],
        "cpu_seconds": args.seconds,
        "result": last.get("result"),
        "pods_asked": len(asked),
        "profiles_on_disk": sum(1 for _ in artifacts.rglob("*.pb.gz")),
        "profile_mib": round(profile_bytes / MIB, 2),
        "rss_before_mib": round(rss_before / MIB, 1),
        "rss_peak_mib": round(peak / MIB, 1),
        "rss_growth_mib": round((peak - rss_before + workers_peak - workers_before) / MIB, 1),
        "operator_rss_growth_mib": round((peak - rss_before) / MIB, 1),
        "analysis_processes": len(workers),  # workers, their fork server, the resource tracker
        "workers_rss_before_mib": round(workers_before / MIB, 1),
        "workers_rss_peak_mib": round(workers_peak / MIB, 1),
        "rss_growth_cold_mib": round((peak - rss_cold) / MIB, 1),
        "wall_s": round(done - min(asked), 2) if asked else None,
        "session_to_done_s": round(done - created, 2),
        "first_request_spread_s": round(max(asked) - min(asked), 3) if asked else None,
        "operator_cpu_s": round(cpu, 2),
        **difference(before, after, done - created, {"GET profilingsessions": POLLS[0]}),
    }
    print(
        f"{args.pods} pods x (cpu {args.seconds}s + heap): {result['result']}, "
        f"{result['profiles_on_disk']} profiles ({result['profile_mib']} MiB); wall "
        f"{result['wall_s']} s (first requests spread over {result['first_request_spread_s']} s); "
        f"RSS {result['rss_before_mib']} -> {result['rss_peak_mib']} MiB "
        f"(+{result['rss_growth_mib']}); operator CPU {result['operator_cpu_s']} s; API server "
        f"CPU {result['apiserver_cpu_s']} s, {result['apiserver_requests']} requests"
    )
    print(f"results: {save('capture_fanout', result)}")


if __name__ == "__main__":
    main()
