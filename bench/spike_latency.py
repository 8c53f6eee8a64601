"""Latency from spike onset to the first profile request at the pod, for each metric source.

For each source and trial: a fresh namespace with one pod (CPU limit 500m), a session whose rule
fires above 300m with no `for`, evaluated every 1s. Once the session reports metrics, the pod
starts burning a core (t0); pprof-target records when the first /debug/pprof request reaches it
(t1). Latency = t1 - t0. Everything is real: API server, Prometheus, the operator process,
which runs with its default poll interval (1 s): evaluations follow trigger.interval, not the poll.

What the latency is made of, for scrape: the rule sees CPU as the rate between two scrapes an
interval apart, so a core burning since t0 shows above 300m only at a scrape 0.3 s or more after
t0; with scrapes every 1 s, that is 0.3 to 1.3 s after t0 depending on the interval's phase (0.8 s
on average, which trials spread evenly); then one look and the capture's first request. The
`for` window is not used (a rule with `for: 10s` adds 10 s). Before the loop waited for the
next evaluation, a whole poll (0.5-1 s) could come on top.

    python bench/spike_latency.py [--trials 5] [--sources scrape,prometheus,metricsServer]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import control_plane, create_namespace, operator, save, wait
from localcluster.peers import Prometheus
from localcluster.sessions import (
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_running,
)

SOURCES = ("scrape", "prometheus", "metricsServer")
CPU_QUERY = 'sum by (pod) (rate(process_cpu_seconds_total{namespace="$namespace"}[2s]))'


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode().strip()


def _trigger(source: str) -> dict[str, Any]:
    trigger: dict[str, Any] = {"metricsSource": source, "interval": "1s"}
    if source == "prometheus":
        trigger["prometheus"] = {"cpuQuery": CPU_QUERY}
    trigger["thresholds"] = [{"name": "hot", "metric": "cpu", "above": "300m"}]
    return trigger


def _metrics_flowing(api: Any, namespace: str) -> bool:
    conditions = get_session(api, namespace, "bench").get("status", {}).get("conditions", [])
    return any(
        c["type"] == "MetricsAvailable"
        and c["status"] == "True"
        and "metrics for 1 of 1" in c["message"]
        for c in conditions
    )


def trial(api: Any, namespace: str, source: str, prometheus: Prometheus, phase: float) -> float:
    create_namespace(api, namespace)
    create_pod(api, namespace, "hot", {"app": "hot"}, cpu_limit="500m")
    ips = wait_running(api, namespace, "app=hot", 1, wait)
    ip = ips["hot"]
    if source == "prometheus":
        prometheus.namespace = namespace
        prometheus.set_targets(ips)
    spec = {
        "selector": {"matchLabels": {"app": "hot"}},
        "target": {"port": 7777},
        "profiles": [{"type": "goroutine"}],
        "trigger": _trigger(source),
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("bench", spec))
    wait(lambda: _metrics_flowing(api, namespace), 60, f"{source} metrics")
    # A few calm evaluations, so the rule has seen the pod below the line; then the burn starts
    # `phase` of an interval later than the first evaluation that reported metrics. Trials
    # spread the phase evenly: started at the same phase, every trial would wait as long for
    # the next evaluation, and the figures would say more about that phase than about spikes.
    time.sleep(2 + phase)
    _get(f"http://{ip}:7777/control/reset")
    t0 = time.time()
    _get(f"http://{ip}:7777/control/burn?cores=1&seconds=60")
    first = wait(
        lambda: int(_get(f"http://{ip}:7777/control/first-pprof-request")), 60, "a profile request"
    )
    _get(f"http://{ip}:7777/control/reset")
    return first / 1e9 - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--sources", default=",".join(SOURCES))
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-bench-"))
    results: dict[str, Any] = {"trials": args.trials, "interval": "1s", "sources": {}}
    namespaces = [f"{source.lower()}-{i}" for source in sources for i in range(args.trials)]
    with control_plane(workdir) as (plane, api):
        prometheus = Prometheus(workdir / "prometheus", "none")
        prometheus.start()
        try:
            env = {"SPIKEPROF_PROMETHEUS_URL": prometheus.url, "SPIKEPROF_POLL_SECONDS": "1"}
            with operator(plane, workdir, namespaces, env):
                for source in sources:
                    latencies = [
                        trial(
                            api,
                            f"{source.lower()}-{i}",
                            source,
                            prometheus,
                            phase=(i + 0.5) / args.trials,
                        )
                        for i in range(args.trials)
                    ]
                    results["sources"][source] = {
                        "latencies_s": [round(x, 3) for x in latencies],
                        "p50_s": round(statistics.median(latencies), 3),
                        "max_s": round(max(latencies), 3),
                    }
                    each = ", ".join(f"{x:.2f}" for x in latencies)
                    p50 = statistics.median(latencies)
                    print(f"{source:14s} p50 {p50:6.2f}s  max {max(latencies):6.2f}s  ({each})")
        finally:
            prometheus.stop()
    scrape = results["sources"].get("scrape")
    if scrape is not None:
        results.update(scrape_p50_s=scrape["p50_s"], scrape_max_s=scrape["max_s"])
    print(f"results: {save('spike_latency', results)}")


if __name__ == "__main__":
    main()
