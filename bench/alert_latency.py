"""Alert receiver latency: from the webhook request to the first profile request at the pod,
at a sustained rate of alerts per second.

One session reacts to the alert; N pods (real pprof-target processes) are named in turn, each
alert with a fresh fingerprint, cooldown 0s, so every alert asks for one goroutine profile of
one pod. For each alert: the pod's "first pprof request" clock is reset, the time t0 is taken
and the notification is POSTed; when the round comes back to that pod, its clock says when the
operator's first profile request arrived (t1). Latency = t1 - t0. An alert whose capture had
not reached the pod by then counts as missed.

    python bench/alert_latency.py [--rate 50] [--seconds 20] [--pods 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import control_plane, create_namespace, operator, save, wait
from localcluster.sessions import (
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_running,
)

NAMESPACE = "alerts"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode().strip()


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return int(reply.status)


def _notification(pod: str, serial: int) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "groupKey": "bench",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "BenchAlert", "namespace": NAMESPACE, "pod": pod},
                "annotations": {},
                "startsAt": f"2026-11-26T00:00:{serial % 60:02d}Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"bench-{serial}",
            }
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pods", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-alert-bench-"))
    with control_plane(workdir) as (plane, api):
        create_namespace(api, NAMESPACE)
        for i in range(args.pods):
            create_pod(api, NAMESPACE, f"pod-{i:03d}", {"app": "bench"})
        ips = wait_running(api, NAMESPACE, "app=bench", args.pods, wait)
        names = sorted(ips)
        with operator(plane, workdir, [NAMESPACE]) as process:
            del process
            alerts_port = wait(lambda: _alerts_port(workdir), 60, "the alert receiver")
            spec = {
                "selector": {"matchLabels": {"app": "bench"}},
                "target": {"port": 7777},
                "profiles": [{"type": "goroutine"}],
                "trigger": {"alerts": {"matchLabels": {"alertname": "BenchAlert"}}},
                "limits": {"cooldown": "0s", "maxConcurrent": 64},
                "output": {"volume": {}},
            }
            create_session(api, NAMESPACE, session_body("bench", spec))
            wait(
                lambda: (
                    get_session(api, NAMESPACE, "bench").get("status", {}).get("phase") == "Armed"
                ),
                60,
                "Armed",
            )
            url = f"http://127.0.0.1:{alerts_port}/alerts"
            sent: dict[str, float] = {}
            latencies: list[float] = []
            missed = 0
            refused: list[int] = []
            lock = threading.Lock()

            def one(serial: int) -> None:
                nonlocal missed
                pod = names[serial % len(names)]
                base = f"http://{ips[pod]}:7777/control"
                with lock:
                    previous = sent.pop(pod, None)
                if previous is not None:
                    first = int(_get(f"{base}/first-pprof-request"))
                    with lock:
                        if first:
                            latencies.append(first / 1e9 - previous)
                        else:
                            missed += 1
                _get(f"{base}/reset")
                t0 = time.time()
                try:
                    accepted = _post(url, _notification(pod, serial)) == 200
                except OSError:  # no answer within 10 s: Alertmanager would retry it
                    accepted = False
                with lock:
                    if accepted:
                        sent[pod] = t0
                    else:
                        refused.append(serial)

            total = int(args.rate * args.seconds)
            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                futures = []
                for serial in range(total):
                    delay = started + serial / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    futures.append(pool.submit(one, serial))
                for future in futures:
                    future.result()
            achieved = total / (time.monotonic() - started)
            time.sleep(3)
            for pod, t0 in sent.items():  # the last round
                first = int(_get(f"http://{ips[pod]}:7777/control/first-pprof-request"))
                if first:
                    latencies.append(first / 1e9 - t0)
                else:
                    missed += 1
            status = get_session(api, NAMESPACE, "bench")["status"]
    latencies.sort()
    result = {
        "rate_per_s": args.rate,
        "achieved_rate_per_s": round(achieved, 1),
        "alerts": total,
        "pods": args.pods,
        "measured": len(latencies),
        "missed": missed,
        "unanswered_or_refused": len(refused),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "captures": status.get("captures", {}).get("total"),
    }
    print(
        f"{result['alerts']} alerts at {result['achieved_rate_per_s']}/s over {args.pods} pods: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms, "
        f"missed {missed}, unanswered {len(refused)}; {result['captures']} captures"
    )
    print(f"results: {save('alert_latency', result)}")


def _alerts_port(workdir: Path) -> int | None:
    """The receiver's port, from the operator's start-up line, once it has written it."""
    log = workdir / "operator.log"
    for line in log.read_text().splitlines() if log.exists() else ():
        if "alerts on :" in line:
            return int(line.rsplit("alerts on :", 1)[1].rstrip("."))
    return None


if __name__ == "__main__":
    main()
