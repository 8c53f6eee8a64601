"""Operator cost of watching many pods for spikes: CPU time per evaluation cycle, and RSS.

N pods (API objects run by the pod stand-in, with no process behind them, so the metrics-server
stand-in reports them idle) in one namespace; one session selects them all with a CPU rule,
source metricsServer, evaluated every 5s: one PodMetrics list per cycle, rules on N pods. The
operator's CPU seconds (from /proc) over a measuring window are divided by the cycles in it; the
same window with no session gives the idle cost of watching N pods.

    python bench/evaluation_cost.py [--pods 1000 10000] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import control_plane, cpu_seconds, create_namespace, operator, rss_bytes, save, wait
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.sessions import create_session, get_session, session_body

INTERVAL = 5.0


def create_pods(api: Any, namespace: str, count: int) -> None:
    core = client.CoreV1Api(api)

    def make(i: int) -> None:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": f"pod-{i:05d}", "labels": {"app": "fleet"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "none", "resources": {"limits": {"cpu": "500m"}}}
                    ]
                },
            },
            _preload_content=False,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(count)))

    def running() -> bool:
        reply = core.list_namespaced_pod(
            namespace, field_selector="status.phase=Running", _preload_content=False
        )
        return len(json.loads(reply.data)["items"]) >= count

    wait(running, 1800, f"{count} running pods", every=2)


def measure(pid: int, window: float) -> float:
    start = cpu_seconds(pid)
    time.sleep(window)
    return cpu_seconds(pid) - start


def run(count: int, window: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"spikeprof-cost-{count}-"))
    namespace = "fleet"
    with control_plane(workdir) as (plane, api):
        create_namespace(api, namespace)
        started = time.monotonic()
        create_pods(api, namespace, count)
        print(f"{count} pods running after {time.monotonic() - started:.0f}s", flush=True)
        with operator(plane, workdir, [namespace]) as process:
            time.sleep(15)  # the pod index fills from the initial list
            idle = measure(process.pid, window)
            idle_rss = rss_bytes(process.pid)
            spec = {
                "selector": {"matchLabels": {"app": "fleet"}},
                "target": {"port": 7777},
                "profiles": [{"type": "goroutine"}],
                "trigger": {
                    "metricsSource": "metricsServer",
                    "interval": f"{INTERVAL:g}s",
                    "thresholds": [{"name": "hot", "metric": "cpu", "above": "80%", "of": "limit"}],
                },
                "output": {"volume": {}},
            }
            create_session(api, namespace, session_body("fleet", spec))

            def reporting() -> bool:
                conditions = (
                    get_session(api, namespace, "fleet").get("status", {}).get("conditions", [])
                )
                return any(
                    c["type"] == "MetricsAvailable"
                    and f"metrics for {count} of {count}" in c["message"]
                    for c in conditions
                )

            wait(reporting, 300, "metrics for every pod", every=1)
            busy = measure(process.pid, window)
            busy_rss = rss_bytes(process.pid)
    cycles = window / INTERVAL
    result = {
        "pods": count,
        "window_s": window,
        "interval_s": INTERVAL,
        "cycles": cycles,
        "idle_cpu_s": round(idle, 3),
        "session_cpu_s": round(busy, 3),
        "cpu_s_per_cycle": round((busy - idle) / cycles, 4),
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "session_rss_mib": round(busy_rss / 2**20, 1),
    }
    print(
        f"{count:6d} pods: {result['cpu_s_per_cycle'] * 1000:.1f} ms CPU per evaluation cycle "
        f"(over idle), RSS {result['idle_rss_mib']} MiB idle, {result['session_rss_mib']} MiB "
        f"with the session",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    results = [run(count, args.window) for count in args.pods]
    print(f"results: {save('evaluation_cost', {'runs': results})}")


if __name__ == "__main__":
    main()
