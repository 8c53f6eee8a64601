"""A metrics.k8s.io backend for the local control plane, standing in for metrics-server.

metrics-server reads the kubelet's resource metrics; there is no kubelet here. This backend
reports what each stand-in pod's pprof-target process really uses, read from /proc: CPU as the
rate of utime+stime between two reads, memory as resident set size. It is served over TLS and
registered with the real API server as an APIService, so clients reach it exactly as they
reach metrics-server: through the aggregation layer, `GET /apis/metrics.k8s.io/v1beta1/...`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config  # type: ignore[import-untyped]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WINDOW = 1.0  # seconds between the two /proc reads a CPU rate is computed from

NOT_FOUND = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "reason": "NotFound",
    "code": 404,
}
GROUP = {
    "kind": "APIGroup",
    "apiVersion": "v1",
    "name": "metrics.k8s.io",
    "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
    "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"},
}
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "metrics.k8s.io/v1beta1",
    "resources": [
        {
            "name": "pods",
            "singularName": "",
            "namespaced": True,
            "kind": "PodMetrics",
            "verbs": ["get", "list"],
        },
        {
            "name": "nodes",
            "singularName": "",
            "namespaced": False,
            "kind": "NodeMetrics",
            "verbs": ["get", "list"],
        },
    ],
}


def _processes_by_ip() -> dict[str, list[int]]:
    """pprof-target processes by the pod IP they listen on (from their -listen flag)."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"pprof-target"):
            continue
        for arg in args:
            if arg.startswith(b"-listen="):
                ip = arg.removeprefix(b"-listen=").decode().rsplit(":", 1)[0]
                found.setdefault(ip, []).append(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


class Usage:
    """Keeps a fresh sample of every stand-in process's usage, refreshed in the background."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_ip: dict[str, tuple[float, int]] = {}  # ip -> (cores, bytes)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            before = {ip: pids for ip, pids in _processes_by_ip().items()}
            first = {pid: self._cpu(pid) for pids in before.values() for pid in pids}
            started = time.monotonic()
            time.sleep(WINDOW)
            elapsed = time.monotonic() - started
            sample: dict[str, tuple[float, int]] = {}
            for ip, pids in before.items():
                cores, rss = 0.0, 0
                for pid in pids:
                    try:
                        cores += max(0.0, (_cpu_seconds(pid) - first[pid]) / elapsed)
                        rss += _rss_bytes(pid)
                    except (OSError, IndexError, KeyError):
                        continue  # the process ended between the reads
                sample[ip] = (cores, rss)
            with self.lock:
                self.by_ip = sample

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            return _cpu_seconds(pid)
        except (OSError, IndexError):
            return 0.0

    def get(self, ip: str) -> tuple[float, int] | None:
        with self.lock:
            return self.by_ip.get(ip)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_handler(api: Any, usage: Usage) -> type[BaseHTTPRequestHandler]:
    core = client.CoreV1Api(api)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            parts = path.split("/")
            if path in ("/apis", "/apis/metrics.k8s.io"):
                self._send(
                    200,
                    GROUP
                    if path.endswith("k8s.io")
                    else {"kind": "APIGroupList", "apiVersion": "v1", "groups": [GROUP]},
                )
            elif path == "/apis/metrics.k8s.io/v1beta1":
                self._send(200, RESOURCES)
            elif path == "/healthz" or path == "/readyz":
                self._send(200, {"status": "ok"})
            elif (
                len(parts) in (7, 8)
                and parts[:5] == ["", "apis", "metrics.k8s.io", "v1beta1", "namespaces"]
                and parts[6] == "pods"
            ):
                self._pods(parts[5], parts[7] if len(parts) == 8 else None)
            else:
                self._send(404, NOT_FOUND)

        def _pods(self, namespace: str, name: str | None) -> None:
            # Raw JSON: deserialising thousands of V1Pods would dominate the answer time.
            reply = core.list_namespaced_pod(namespace, _preload_content=False)
            pods = json.loads(reply.data)["items"]
            items = []
            for pod in pods:
                meta, status = pod["metadata"], pod.get("status") or {}
                if name and meta["name"] != name:
                    continue
                if status.get("phase") != "Running" or not status.get("podIP"):
                    continue  # like metrics-server: a pod not running has no sample
                # A running stand-in pod without a process (no ports) truly uses nothing.
                cores, rss = usage.get(status["podIP"]) or (0.0, 0)
                items.append(
                    {
                        "metadata": {
                            "name": meta["name"],
                            "namespace": namespace,
                            "creationTimestamp": _now(),
                        },
                        "timestamp": _now(),
                        "window": f"{WINDOW:g}s",
                        "containers": [
                            {
                                "name": pod["spec"]["containers"][0]["name"],
                                "usage": {
                                    "cpu": f"{round(cores * 1e9)}n",
                                    "memory": f"{rss // 1024}Ki",
                                },
                            }
                        ],
                    }
                )
            if name:
                if items:
                    self._send(
                        200,
                        {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **items[0]},
                    )
                else:
                    self._send(404, NOT_FOUND)
                return
            self._send(
                200,
                {
                    "kind": "PodMetricsList",
                    "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {},
                    "items": items,
                },
            )

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port-file", required=True, help="where to write the bound port")
    args = parser.parse_args()
    api = config.new_client_from_config(config_file=args.kubeconfig)
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(api, Usage()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Path(args.port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
