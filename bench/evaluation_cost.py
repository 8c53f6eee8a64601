"""Operator cost of watching many pods for spikes: CPU time per evaluation cycle, and RSS.

N pods (API objects with no process behind them, so the metrics-server stand-in reports them
idle) spread over one or more namespaces; one session per namespace selects all of its pods with
a CPU rule, source metricsServer, evaluated every 5s: one PodMetrics list per cycle and session,
rules on every pod. The operator's CPU seconds over a measuring window (its process CPU-time
clock, in ns: harness.cpu_seconds) are divided by the cycles in it; the same window before any
session gives the idle cost, which is subtracted. Pods are watched only in namespaces that have
a session, so idle is the operator's floor (its imports: kopf, the Kubernetes client's models
...), and the RSS with the sessions is the floor plus what is held per pod. RSS is read at the
end of each window.

The pods are created bound to the stand-in's Node (spec.nodeName), as a DaemonSet's are, so the
stand-in has no binding to make; it reports each one Running with a pod IP.

--shards K measures the share of one shard: the namespaces are spread over K shards by
rendezvous hashing (core.shards.owner, shard names shard-0..shard-K-1) and the operator runs
with `--namespace` for those of shard-0 only, as a shard serving its own namespaces would; the
figures go under `sharding` in the results, next to a run of one operator serving all of them.

--profile records the operator with py-spy (if installed) for one more window after the
measured one (or --profile-seconds), and prints where its CPU went, inclusive of callees and in
the function itself (the measured window itself is never sampled). py-spy samples only while the
operator is on CPU: a cycle of ~10 ms every 5 s gives few samples, so profile for minutes.

    python bench/evaluation_cost.py [--pods 1000 10000 30000] [--namespaces 1] [--window 60]
    python bench/evaluation_cost.py --pods 30000 --namespaces 30 --shards 3
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from apiserver import ApiServerMeter
from harness import (
    RESULTS,
    control_plane,
    cpu_seconds,
    create_namespace,
    operator,
    rss_bytes,
    save,
    wait,
)
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.sessions import GROUP, PLURAL, VERSION, create_session, session_body
from localcluster.standin import NODE_NAME
from prometheus_client.parser import text_string_to_metric_families
from pyspy import profile

from spikeprof.core.shards import owner

INTERVAL = 5.0
CREATORS = 16  # threads creating pods: the API server and the stand-in, not this, set the pace


def namespaces_for(count: int) -> list[str]:
    return ["fleet"] if count == 1 else [f"fleet-{i:02d}" for i in range(count)]


def create_pods(api: Any, namespaces: list[str], count: int) -> None:
    """`count` pods, dealt round-robin over the namespaces; returns once all run."""
    core = client.CoreV1Api(api)

    def make(i: int) -> None:
        core.create_namespaced_pod(
            namespaces[i % len(namespaces)],
            {
                "metadata": {"name": f"pod-{i:05d}", "labels": {"app": "fleet"}},
                "spec": {
                    "nodeName": NODE_NAME,
                    "containers": [
                        {"name": "app", "image": "none", "resources": {"limits": {"cpu": "500m"}}}
                    ],
                },
            },
            _preload_content=False,
        )

    with ThreadPoolExecutor(CREATORS) as pool:
        list(pool.map(make, range(count)))

    def running() -> bool:
        # One pod not yet running is enough to know: a full list of 30,000 pods every few
        # seconds would cost the API server (and this) more than the stand-in's work.
        reply = core.list_pod_for_all_namespaces(
            field_selector="status.phase!=Running",
            label_selector="app=fleet",
            limit=1,
            _preload_content=False,
        )
        return not json.loads(reply.data)["items"]

    wait(running, 3600, f"{count} running pods", every=5)


def session_spec() -> dict[str, Any]:
    return {
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


def all_reporting(api: Any, namespaces: list[str], per_namespace: dict[str, int]) -> bool:
    """Every session says it has metrics for every one of its pods."""
    listing = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
    reporting = set()
    for item in listing.get("items") or ():
        namespace = item["metadata"]["namespace"]
        want = per_namespace[namespace]
        for condition in (item.get("status") or {}).get("conditions") or ():
            if condition["type"] == "MetricsAvailable" and (
                f"metrics for {want} of {want}" in condition["message"]
            ):
                reporting.add(namespace)
    return reporting >= set(namespaces)


def metrics_lists(meter: ApiServerMeter) -> int:
    """PodMetrics lists answered so far: the metrics-server stand-in lists the namespace's pods
    for each (the only namespaced pod LISTs while the operator's pod watches run)."""
    with urllib.request.urlopen(
        f"{meter.plane.server}/metrics", context=meter.context, timeout=10
    ) as reply:
        text = reply.read().decode()
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "apiserver_request"
        for sample in family.samples
        if sample.name == "apiserver_request_total"
        and sample.labels.get("verb") == "LIST"
        and sample.labels.get("resource") == "pods"
        and sample.labels.get("scope") == "namespace"
        and not sample.labels.get("group")
    )


def measure(pid: int, window: float) -> list[float]:
    """CPU seconds of the process in each evaluation interval of the window."""
    spent = []
    for _ in range(max(1, round(window / INTERVAL))):
        start = cpu_seconds(pid)
        time.sleep(INTERVAL)
        spent.append(cpu_seconds(pid) - start)
    return spent


def measure_operator(
    plane: Any,
    api: Any,
    workdir: Path,
    served: list[str],
    per_namespace: dict[str, int],
    window: float,
    profile_seconds: float,
) -> dict[str, Any]:
    """One operator process serving `served`: idle, then with one session per namespace."""
    pods = sum(per_namespace[ns] for ns in served)
    custom = client.CustomObjectsApi(api)
    with operator(plane, workdir, served) as process:
        time.sleep(15)  # the pod watches fill from their first lists
        idle_each = measure(process.pid, window)
        idle_rss = rss_bytes(process.pid)
        for namespace in served:
            create_session(api, namespace, session_body("fleet", session_spec()))
        wait(lambda: all_reporting(api, served, per_namespace), 600, "metrics for every pod", 1)
        meter = ApiServerMeter(plane)
        lists_before = metrics_lists(meter)
        busy_each = measure(process.pid, window)
        evaluations = metrics_lists(meter) - lists_before
        busy_rss = rss_bytes(process.pid)
        hot = profile(process.pid, profile_seconds, workdir) if profile_seconds else []
        # Gone before the next operator starts (the finalizer is this one's to remove).
        for namespace in served:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fleet")
        wait(
            lambda: not custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"],
            120,
            "sessions deleted",
            1,
        )
    cycles = len(busy_each)
    idle, busy = sum(idle_each), sum(busy_each)
    # The median cycle too: one-off work in the window (a collection of the whole heap, a
    # status write of kopf's) moves the mean of a few cycles a lot on shared cores.
    median = statistics.median(busy_each) - statistics.median(idle_each)
    result: dict[str, Any] = {
        "pods": pods,
        "namespaces": len(served),
        "window_s": window,
        "interval_s": INTERVAL,
        "cycles": cycles,
        "idle_cpu_s": round(idle, 3),
        "session_cpu_s": round(busy, 3),
        "cpu_ms_per_cycle": round((busy - idle) / cycles * 1000, 1),
        "cpu_ms_per_cycle_median": round(median * 1000, 1),
        # Evaluations done in the window (one PodMetrics list each), and the CPU of each: the
        # same as per cycle while every evaluation keeps to its interval.
        "evaluations": evaluations,
        "cpu_ms_per_evaluation": round((busy - idle) / evaluations * 1000, 1)
        if evaluations
        else None,
        "cpu_ms_each_cycle": [round(b * 1000, 1) for b in busy_each],
        "idle_cpu_ms_per_cycle": round(idle / cycles * 1000, 1),
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "rss_mib": round(busy_rss / 2**20, 1),
    }
    if hot:
        result["hot_spots"] = hot[:25]
    print(
        f"{pods:6d} pods in {len(served)} namespace(s): {result['cpu_ms_per_cycle']:.1f} ms CPU "
        f"per evaluation cycle (median {result['cpu_ms_per_cycle_median']:.1f}; over idle "
        f"{result['idle_cpu_ms_per_cycle']:.1f} ms), each {result['cpu_ms_each_cycle']}, RSS "
        f"{result['idle_rss_mib']} MiB idle, {result['rss_mib']} MiB with the sessions",
        flush=True,
    )
    return result


def run(
    count: int, namespace_count: int, window: float, shards: int, profile_seconds: float
) -> dict[str, Any]:
    """One cluster with `count` pods: the operator serving every namespace, and with --shards,
    then one serving the namespaces of shard-0 only."""
    workdir = Path(tempfile.mkdtemp(prefix=f"spikeprof-cost-{count}-"))
    namespaces = namespaces_for(namespace_count)
    per_namespace = collections.Counter(namespaces[i % len(namespaces)] for i in range(count))
    with control_plane(workdir) as (plane, api):
        for namespace in namespaces:
            create_namespace(api, namespace)
        started = time.monotonic()
        create_pods(api, namespaces, count)
        created_s = time.monotonic() - started
        print(f"{count} pods running after {created_s:.0f}s", flush=True)
        result = measure_operator(
            plane, api, workdir / "all", namespaces, per_namespace, window, profile_seconds
        )
        result["pods_running_after_s"] = round(created_s)
        if shards > 1:
            names = [f"shard-{i}" for i in range(shards)]
            mine = [ns for ns in namespaces if owner(ns, names) == names[0]]
            share = measure_operator(
                plane, api, workdir / "shard-0", mine, per_namespace, window, profile_seconds
            )
            result = {"one_shard": result, f"shard_0_of_{shards}": share}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--namespaces", type=int, default=1, help="pods spread over this many")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument(
        "--shards", type=int, default=1, help="also measure shard 0 of this many (see above)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy one more window")
    parser.add_argument("--profile-seconds", type=float, help="py-spy this long (and --profile)")
    args = parser.parse_args()
    profile_seconds = args.profile_seconds or (args.window if args.profile else 0.0)
    runs = [run(c, args.namespaces, args.window, args.shards, profile_seconds) for c in args.pods]
    # The other part of the results (main runs, or sharding) is kept as the last run left it.
    previous = RESULTS / "evaluation_cost.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    if args.shards > 1:
        # The main runs are kept; the sharding part is added or replaced.
        results["sharding"] = {
            "namespaces": args.namespaces,
            "shards": args.shards,
            "assigned_by": "core.shards.owner over shard-0..shard-N-1; the operator runs "
            "with --namespace for shard-0's",
            "runs": runs,
        }
    else:
        results.update(goals=GOALS, runs=runs)
    print(f"results: {save('evaluation_cost', results)}")


GOALS = {
    "1000": {"cpu_ms_per_cycle": 10, "rss_mib": 120},
    "10000": {"cpu_ms_per_cycle": 50, "rss_mib": 150},
}

if __name__ == "__main__":
    main()
