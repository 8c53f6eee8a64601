"""Alert receiver latency: from the webhook request to the first profile request at the pod,
at sustained rates of alerts per second.

One session reacts to the alert; N pods (real pprof-target processes) are named in turn, each
alert with a fresh fingerprint, cooldown 0s, so every alert asks for one goroutine profile of
one pod. The operator runs with its default poll interval (1 s): only the wake-up can make it
faster than that.

Alerts are sent open-loop: pod p gets its k-th alert at start + (k * N + p) / rate, whether or
not earlier answers came back. For each alert the pod's "first pprof request" clock is reset,
t0 is taken and the notification is POSTed (t_ack when the 200 comes back: the alert is then in
status). One round later (N / rate seconds), before the pod's next alert, its clock says when the
operator's first profile request arrived (t1): latency = t1 - t0. An acknowledged alert whose
capture had not reached the pod within that round counts as late (its latency is not known).
At the end, once the session has nothing pending, an acknowledged alert that no pod's
metadata.json on disk names (trigger.alerts, by its key) counts as missed: answered 200, never
captured.

The API server's work is read from its own counter (apiserver_request_total) and its CPU time.

--profile records, during the first rate's burst, the API server's own CPU profile (its
/debug/pprof, printed as `go tool pprof -top` and kept as apiserver.pprof) and, with
--profile=both, the operator with py-spy: where the CPU of the burst goes. Profiling costs CPU
itself (py-spy much more), so its figures are not saved.

    python bench/alert_latency.py [--rates 50,200] [--seconds 30] [--pods 100] [--profile[=both]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from apiserver import ApiServerMeter, difference
from harness import (
    control_plane,
    create_namespace,
    operator,
    save,
    tree_cpu_seconds,
    wait,
)
from localcluster.sessions import (
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_running,
)
from pyspy import profile

NAMESPACE = "alerts"
SESSION = "bench"


def _notification(pod: str, fingerprint: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "groupKey": "bench",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "BenchAlert", "namespace": NAMESPACE, "pod": pod},
                "annotations": {},
                "startsAt": "2026-11-26T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint,
            }
        ],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Run:
    """One rate: what was sent, answered, and seen at the pods."""

    def __init__(self, rate: float, seconds: float, names: list[str], ips: dict[str, str]) -> None:
        self.rate = rate
        self.seconds = seconds
        self.names = names
        self.ips = ips
        self.latencies: list[float] = []
        self.acks: list[float] = []
        self.late = 0
        self.refused = 0
        self.acknowledged: list[str] = []  # alert fingerprints answered 200
        self.sent = 0

    async def first_request(self, http: aiohttp.ClientSession, pod: str) -> float:
        """When the pod saw its first pprof request since the last reset (0: none)."""
        async with http.get(f"http://{self.ips[pod]}:7777/control/first-pprof-request") as reply:
            return int((await reply.text()).strip()) / 1e9

    async def settle(self, http: aiohttp.ClientSession, pod: str, t0: float) -> None:
        first = await self.first_request(http, pod)
        if first:
            self.latencies.append(first - t0)
        else:
            self.late += 1

    async def pod(self, http: aiohttp.ClientSession, url: str, index: int, start: float) -> None:
        pod = self.names[index]
        period = len(self.names) / self.rate
        rounds = int(self.rate * self.seconds) // len(self.names)
        previous: float | None = None
        for k in range(rounds):
            await asyncio.sleep(max(0.0, start + k * period + index / self.rate - time.time()))
            if previous is not None:
                await self.settle(http, pod, previous)
                previous = None
            async with http.get(f"http://{self.ips[pod]}:7777/control/reset") as reply:
                await reply.read()
            t0 = time.time()
            self.sent += 1
            fingerprint = f"bench-{self.rate:g}-{k}-{index}"
            body = _notification(pod, fingerprint)
            try:
                async with http.post(url, json=body) as reply:
                    await reply.read()
                    accepted = reply.status == 200
            except (aiohttp.ClientError, TimeoutError):  # Alertmanager would retry it
                accepted = False
            if accepted:
                self.acks.append(time.time() - t0)
                self.acknowledged.append(fingerprint)
                previous = t0
            else:
                self.refused += 1
        if previous is not None:
            # The last round: as long as the others had.
            await asyncio.sleep(max(0.0, previous + period - time.time()))
            await self.settle(http, pod, previous)

    async def send(self, url: str) -> float:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            start = time.time() + 0.5
            await asyncio.gather(*(self.pod(http, url, i, start) for i in range(len(self.names))))
            return time.time() - start


def _uncaptured(root: Path, acknowledged: list[str]) -> int:
    """Acknowledged alerts that no pod's metadata.json on disk names (trigger.alerts holds the
    keys, fingerprint@startsAt, of the alerts that asked for the pod)."""
    captured: set[str] = set()
    for metadata in root.glob(f"{NAMESPACE}/{SESSION}/*/*/metadata.json"):
        keys = json.loads(metadata.read_text()).get("trigger", {}).get("alerts") or []
        captured.update(key.split("@", 1)[0] for key in keys)
    return sum(1 for fingerprint in acknowledged if fingerprint not in captured)


def _profile_burst(
    meter: ApiServerMeter, operator_pid: int, seconds: float, workdir: Path, operator: bool
) -> threading.Thread:
    """Profile the API server and the operator over the next `seconds`, in the background."""

    def api_server() -> None:
        path = workdir / "apiserver.pprof"
        path.write_bytes(meter.cpu_profile(seconds))
        top = subprocess.run(
            ["go", "tool", "pprof", "-top", "-nodecount=40", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"API server during the burst ({path}):\n{top.stdout}", flush=True)

    def both() -> None:
        server = threading.Thread(target=api_server)
        server.start()
        if operator:
            profile(operator_pid, seconds, workdir)
        server.join()

    thread = threading.Thread(target=both)
    thread.start()
    return thread


def measure(
    api: Any,
    meter: ApiServerMeter,
    operator_pid: int,
    url: str,
    artifacts: Path,
    rate: float,
    seconds: float,
    names: list[str],
    ips: dict[str, str],
    profile_into: Path | None = None,
    profile_operator: bool = False,
) -> dict[str, Any]:
    run = Run(rate, seconds, names, ips)
    captures = (get_session(api, NAMESPACE, SESSION).get("status") or {}).get("captures") or {}
    before, cpu = meter.read(), tree_cpu_seconds(operator_pid)
    profiling = profile_into and _profile_burst(
        meter, operator_pid, seconds, profile_into, profile_operator
    )
    elapsed = asyncio.run(run.send(url))
    after, cpu = meter.read(), tree_cpu_seconds(operator_pid) - cpu
    if profiling:
        profiling.join()

    def settled() -> bool:
        status = get_session(api, NAMESPACE, SESSION).get("status") or {}
        return not status.get("pendingAlerts") and not status.get("pendingCapture")

    try:
        wait(settled, 120, "no pending alert or capture")
    except Exception as error:  # reported below as captures missing from disk
        print(f"not settled: {error}")
    session = get_session(api, NAMESPACE, SESSION)
    status = session.get("status") or {}
    latencies = run.latencies or [float("nan")]
    acks = run.acks or [float("nan")]
    result = {
        "rate": rate,
        "achieved_rate": round(run.sent / elapsed, 1),
        "alerts": run.sent,
        "acknowledged": len(run.acks),
        "refused": run.refused,
        "pods": len(names),
        "measured": len(run.latencies),
        "missed": _uncaptured(artifacts, run.acknowledged),
        "late": run.late,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "ack_p50_ms": round(statistics.median(acks) * 1000, 1),
        "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 1),
        "captures": ((status.get("captures") or {}).get("total") or 0)
        - (captures.get("total") or 0),
        "operator_cpu_ms_per_alert": round(cpu * 1000 / max(1, run.sent), 2),
        # What every status patch makes the API server decode, merge, validate and encode.
        "session_bytes_after": len(json.dumps(session)),
        "status_bytes_after": len(json.dumps(status)),
        "status_bytes_by_field": {
            field: len(json.dumps(value))
            for field, value in sorted(status.items(), key=lambda item: -len(json.dumps(item[1])))
        },
        "metadata_bytes_after": len(json.dumps(session.get("metadata") or {})),
        **difference(before, after, elapsed),
    }
    print(
        f"{run.sent} alerts at {result['achieved_rate']}/s over {len(names)} pods: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"(answered: p50 {result['ack_p50_ms']} ms, p99 {result['ack_p99_ms']} ms); "
        f"missed {result['missed']}, late {run.late}, refused "
        f"{run.refused}; {result['captures']} captures; API server "
        f"{result['apiserver_requests_per_s']} requests/s, {result['apiserver_cpu_s']} s CPU, "
        f"status patches {result['status_patch_mean_ms']} ms on average; "
        f"operator {result['operator_cpu_ms_per_alert']} ms CPU per alert"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="50,200", help="alerts per second, comma-separated")
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="per rate (30 s: ~1,400 alerts at 50/s, so p99 is not the 5th worst of 500)",
    )
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="apiserver",
        choices=["apiserver", "both"],
        help="profile the API server (and with =both the operator) during the first burst",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-alert-bench-"))
    runs = []
    with control_plane(workdir) as (plane, api):
        meter = ApiServerMeter(plane)
        create_namespace(api, NAMESPACE)
        for i in range(args.pods):
            create_pod(api, NAMESPACE, f"pod-{i:03d}", {"app": "bench"})
        ips = wait_running(api, NAMESPACE, "app=bench", args.pods, wait)
        names = sorted(ips)
        # The product's default poll interval: a fast answer has to come from the wake-up.
        with operator(plane, workdir, [NAMESPACE], {"SPIKEPROF_POLL_SECONDS": "1"}) as process:
            url = f"http://127.0.0.1:{process.alerts_port}/alerts"
            spec = {
                "selector": {"matchLabels": {"app": "bench"}},
                "target": {"port": 7777},
                "profiles": [{"type": "goroutine"}],
                "trigger": {"alerts": {"matchLabels": {"alertname": "BenchAlert"}}},
                "limits": {"cooldown": "0s", "maxConcurrent": 64},
                "output": {"volume": {}},
            }
            create_session(api, NAMESPACE, session_body(SESSION, spec))
            wait(
                lambda: (
                    get_session(api, NAMESPACE, SESSION).get("status", {}).get("phase") == "Armed"
                ),
                60,
                "Armed",
            )
            for rate in rates:
                runs.append(
                    measure(
                        api,
                        meter,
                        process.pid,
                        url,
                        workdir / "artifacts",
                        rate,
                        args.seconds,
                        names,
                        ips,
                        workdir if args.profile and not runs else None,
                        args.profile == "both",
                    )
                )
    if args.profile:
        print("--profile: figures not saved (the profilers took CPU of their own)")
        return
    # The first rate's figures at the top level too (the row is 50 alerts/s).
    print(f"results: {save('alert_latency', {**runs[0], 'runs': runs})}")


if __name__ == "__main__":
    main()
