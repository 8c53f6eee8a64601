"""Benchmark: what reaching a pod through the API server's port-forward costs, against dialing it.

    .venv/bin/python bench/port_forward_cost.py [--fetches 40] [--goroutines 20000]

On the local control plane (real kube-apiserver, kubelet-standin running the kubelet's
port-forward server), one stand-in pod runs pprof-target with --goroutines parked goroutines.
The operator's own fetch path (ProfileFetcher, httpx, and for port-forward the websocket
transport in adapters/port_forward.py) takes from that same pod:

- heap: a heap profile, --fetches times, direct (keep-alive, as the operator's client does)
  and through port-forward (a new websocket through the API server for each fetch, as the
  operator's port-forward transport does: it keeps no idle tunnels);
- goroutine: `goroutine?debug=2`, a large text answer, --fetches/4 times per route, for
  throughput (MB/s) and the operator's CPU seconds per MB (websocket framing is done in Python).

Latencies are wall seconds per fetch (p50, p95); CPU is this process's user+system time.
Figures are printed and written to bench/results/port_forward_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from harness import control_plane, create_namespace, save, wait
from kubernetes import client  # type: ignore[import-untyped]

from spikeprof.adapters import kube
from spikeprof.adapters.pod_http import ProfileFetcher
from spikeprof.adapters.port_forward import port_forward_mounts
from spikeprof.core.endpoints import port_forward_host
from spikeprof.core.spec import ProfileRequest

NAMESPACE = "bench-pf"
POD = "target-0"
PORT = 7777


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


async def timed(times: int, fetch: Callable[[], Awaitable[int]]) -> tuple[list[float], float, int]:
    """Wall seconds of each fetch, CPU seconds of all, and bytes of the last."""
    walls = []
    size = 0
    cpu = time.process_time()
    for _ in range(times):
        start = time.perf_counter()
        size = await fetch()
        walls.append(time.perf_counter() - start)
    return walls, time.process_time() - cpu, size


async def measure(kubeconfig: Path, pod_ip: str, fetches: int, scratch: Path) -> dict[str, Any]:
    api_client = await kube.connect(str(kubeconfig))
    opener = kube.PodPortForward(api_client)
    bases = {
        "direct": f"http://{pod_ip}:{PORT}/debug/pprof",
        "portForward": f"http://{port_forward_host(NAMESPACE, POD)}:{PORT}/debug/pprof",
    }
    heap = ProfileRequest("heap", None)
    results: dict[str, Any] = {}
    try:
        # As the operator builds its client (handlers/startup.py).
        mounts = port_forward_mounts(opener, 16)
        async with httpx.AsyncClient(mounts=mounts, follow_redirects=False) as http:
            fetcher = ProfileFetcher(http)

            def fetch_heap(base: str) -> Callable[[], Awaitable[int]]:
                async def run() -> int:
                    got = await fetcher.fetch(
                        base, heap, scratch / "heap.pb.gz", max_bytes=1 << 30, fetch_timeout=30
                    )
                    return got.bytes

                return run

            for route, base in bases.items():
                await fetch_heap(base)()  # warm: pprof's first answer, a direct conn
                walls, cpu, size = await timed(fetches, fetch_heap(base))
                results[f"heap_{route}"] = {
                    **latency(walls),
                    "bytes": size,
                    "cpu_ms_per_fetch": round(cpu / fetches * 1000, 2),
                }

            big = max(2, fetches // 4)
            for route, base in bases.items():

                async def goroutines(url: str = f"{base}/goroutine") -> int:
                    reply = await http.get(url, params={"debug": "2"}, timeout=120)
                    reply.raise_for_status()
                    return len(reply.content)

                await goroutines()
                walls, cpu, size = await timed(big, goroutines)
                seconds = statistics.fmean(walls)
                results[f"goroutine_text_{route}"] = {
                    **latency(walls),
                    "bytes": size,
                    "mb_per_s": round(size / seconds / 1e6, 1),
                    "cpu_s_per_mb": round(cpu / big / (size / 1e6), 4),
                }
    finally:
        await opener.close()
        await api_client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=40)
    parser.add_argument("--goroutines", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spikeprof-bench-") as tmp:
        workdir = Path(tmp)
        with control_plane(workdir) as (plane, api):
            create_namespace(api, NAMESPACE)
            core = client.CoreV1Api(api)
            core.create_namespaced_pod(
                NAMESPACE,
                {
                    "metadata": {"name": POD, "labels": {"app": "bench"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "pprof-target",
                                "ports": [{"containerPort": PORT}],
                            }
                        ]
                    },
                },
            )
            pod_ip = wait(
                lambda: (
                    (p := core.read_namespaced_pod(POD, NAMESPACE)).status.phase == "Running"
                    and p.status.pod_ip
                ),
                60,
                "the pod",
            )
            httpx.post(
                f"http://{pod_ip}:{PORT}/control/goroutines",
                params={"n": str(args.goroutines)},
                timeout=30,
            ).raise_for_status()
            scratch = workdir / "scratch"
            scratch.mkdir()
            figures = asyncio.run(measure(plane.kubeconfig, pod_ip, args.fetches, scratch))
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "fetches": args.fetches,
        "goroutines": args.goroutines,
        **figures,
    }
    for name, values in figures.items():
        print(f"{name:34} {values}")
    print(f"written to {save('port_forward_cost', results)}")


if __name__ == "__main__":
    main()
