"""Lead time from capture start to the OOM kill, for leaks of known rates, per rule and source.

For each leak rate, metric source and rule: a fresh namespace with one pprof-target pod under a
memory limit, a session (heap profile, evaluated every 1s) whose only rule is either
`predict: {reaches: limit, within: 1m, window: 30s}` or `above: 90%, of: limit`. Once the session
reports metrics and has watched the calm pod for predict's window (its warm-up), the pod
leaks N MiB/s (/control/leak). Capture start is when the first pprof
request reaches the pod (pprof-target records it, in ns; the bench reads it while the pod
lives); the kill is when the pod's status first shows the container OOMKilled (polled every
50 ms; the stand-in kubelet kills it within 0.1 s of passing its limit). Lead time = kill -
capture start; missing means no capture reached the pod before the kill. All is real but the
kubelet and the kernel's OOM killer, which the local cluster's stand-in plays (containers.py).

The slow leak (1 MiB/s) runs under a 64Mi limit, the others under 256Mi, so that the bench takes
minutes rather than the quarter-hour a 1 MiB/s leak needs to fill 256Mi.

    python bench/oom_lead_time.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import control_plane, create_namespace, operator, save, wait
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.sessions import (
    capture_dirs,
    create_pod,
    create_session,
    get_session,
    read_metadata,
    session_body,
    wait_running,
)

SOURCES = ("scrape", "metricsServer")
LEAKS = ((1.0, "64Mi"), (5.0, "256Mi"), (20.0, "256Mi"))  # MiB/s, the container's limit
WINDOW = 30  # seconds: predict's window, and so its warm-up
RULES: dict[str, dict[str, Any]] = {
    "predict": {"predict": {"reaches": "limit", "within": "1m", "window": f"{WINDOW}s"}},
    "above90": {"above": "90%", "of": "limit"},
}
KILL_TIMEOUT = 180.0  # the slowest leak fills its limit in about a minute


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode().strip()


def _metrics_flowing(api: Any, namespace: str) -> bool:
    conditions = get_session(api, namespace, "bench").get("status", {}).get("conditions", [])
    return any(
        c["type"] == "MetricsAvailable"
        and c["status"] == "True"
        and "metrics for 1 of 1" in c["message"]
        for c in conditions
    )


def _oom_killed(api: Any, namespace: str) -> dict[str, Any] | None:
    pod = client.CoreV1Api(api).read_namespaced_pod("leaky", namespace)
    for status in pod.status.container_statuses or ():
        for state in (status.state, status.last_state):
            ended = state.terminated if state is not None else None
            if ended is not None and ended.reason == "OOMKilled":
                return {"finishedAt": ended.finished_at, "restartCount": status.restart_count}
    return None


def trial(
    api: Any, artifacts: Path, namespace: str, source: str, rule: str, rate: float, limit: str
) -> dict[str, Any]:
    create_namespace(api, namespace)
    create_pod(api, namespace, "leaky", {"app": "leaky"}, memory_limit=limit)
    ip = wait_running(api, namespace, "app=leaky", 1, wait)["leaky"]
    spec = {
        "selector": {"matchLabels": {"app": "leaky"}},
        "target": {"port": 7777},
        "profiles": [{"type": "heap"}],
        "trigger": {
            "metricsSource": source,
            "interval": "1s",
            "thresholds": [{"name": rule, "metric": "memory", **RULES[rule]}],
        },
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("bench", spec))
    wait(lambda: _metrics_flowing(api, namespace), 60, f"{source} metrics")
    # A pod watched while calm, for longer than predict's warm-up (its window), as a session
    # that has run a while watches it: the trend starts flat.
    time.sleep(WINDOW + 3)
    t0 = time.time()
    _get(f"http://{ip}:7777/control/leak?mbPerSecond={rate:g}")
    first_request: float | None = None
    killed: dict[str, Any] | None = None
    deadline = t0 + KILL_TIMEOUT
    while killed is None and time.time() < deadline:
        if first_request is None:
            try:
                stamp = int(_get(f"http://{ip}:7777/control/first-pprof-request"))
                first_request = stamp / 1e9 if stamp else None
            # The container is being killed or restarted: the status will say so.
            except OSError:
                pass
        killed = _oom_killed(api, namespace)
        if killed is None:
            time.sleep(0.05)
    kill_at = time.time()
    if killed is None:
        raise RuntimeError(f"{namespace}: no OOM kill within {KILL_TIMEOUT:.0f}s")
    if first_request is not None:
        # The capture began before the kill: let it end (or fail) and publish its metadata.
        wait(lambda: capture_dirs(artifacts / namespace), 30, "the capture's metadata")
    metadata = [read_metadata(d) for d in capture_dirs(artifacts / namespace)]
    finished_before = bool(metadata) and all(
        m["finishedAt"] <= killed["finishedAt"].strftime("%Y-%m-%dT%H:%M:%SZ") for m in metadata
    )
    lead = None if first_request is None else round(kill_at - first_request, 2)
    return {
        "rule": rule,
        "source": source,
        "leak_mib_per_s": rate,
        "limit": limit,
        "capture_started_after_leak_s": (
            None if first_request is None else round(first_request - t0, 2)
        ),
        "kill_after_leak_s": round(kill_at - t0, 2),
        "lead_time_s": lead,
        "capture_finished_before_kill": finished_before,
        "reason": (
            get_session(api, namespace, "bench").get("status", {}).get("lastCapture") or {}
        ).get("reason"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-bench-"))
    plan = [
        (f"{rule}-{source.lower()}-{int(rate)}", source, rule, rate, limit)
        for rate, limit in LEAKS
        for source in SOURCES
        for rule in RULES
    ]
    results: dict[str, Any] = {
        "interval": "1s",
        "profiles": ["heap"],
        "rules": {name: {"metric": "memory", **body} for name, body in RULES.items()},
        "limits": {f"{rate:g} MiB/s": limit for rate, limit in LEAKS},
        "notes": (
            "The 1 MiB/s leak runs under a 64Mi limit (not 256Mi) to keep the bench to minutes. "
            "Capture start is the first pprof request at the pod (ns); the kill is when the "
            "pod's status shows OOMKilled (polled every 50 ms). metricsServer is the local "
            "cluster's metrics backend, which reads RSS at each request (a real metrics-server "
            "refreshes about every 15 s, which would cost predict its samples and above: 90% "
            "its chance on fast leaks). Each pod is watched calm for predict's window (its "
            "warm-up) before it leaks. lead_time_s null: no capture reached the pod before "
            "the kill."
        ),
        "trials": [],
    }
    with (
        control_plane(workdir) as (_plane, api),
        operator(_plane, workdir, [name for name, *_ in plan]) as process,
    ):
        for namespace, source, rule, rate, limit in plan:
            row = trial(api, process.artifact_root, namespace, source, rule, rate, limit)
            results["trials"].append(row)
            lead = "missed" if row["lead_time_s"] is None else f"{row['lead_time_s']:6.2f}s"
            print(f"{rule:8s} {source:14s} {rate:4.0f} MiB/s under {limit:5s}  lead {lead}")
    print(f"results: {save('oom_lead_time', results)}")


if __name__ == "__main__":
    main()
