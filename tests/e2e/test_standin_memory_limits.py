"""The local cluster enforces memory limits as the kernel and the kubelet do.

A stand-in container past its `resources.limits.memory` is SIGKILLed (the stand-in polls its RSS:
the machine has no cgroup v2 memory controller) and its pod's status says what a real kubelet's
would: `lastState.terminated` OOMKilled/137, `restartCount` 1, running again as a new process on
the same address. Any other exit is `Error` with its exit code. A container within its limit is
left alone, and metrics.k8s.io follows the restarted process.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e

PORT = 7777
MiB = 1 << 20


def _create_pod(
    api: client.ApiClient,
    namespace: str,
    name: str,
    wait_for: Callable[..., Any],
    memory_limit: str | None,
) -> Any:
    core = client.CoreV1Api(api)
    container: dict[str, Any] = {
        "name": "app",
        "image": "pprof-target",
        "ports": [{"containerPort": PORT}],
    }
    if memory_limit is not None:
        container["resources"] = {"limits": {"memory": memory_limit}}
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": name}, "spec": {"containers": [container]}}
    )

    def running() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" and pod.status.pod_ip else None

    return wait_for(running, 60, f"pod {name} to run")


def _get(ip: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:{PORT}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def _process_of(ip: str) -> int:
    """The pid of the pprof-target listening on the pod's address."""
    listen = f"-listen={ip}:{PORT}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].endswith(b"pprof-target") and listen in args:
            return int(entry.name)
    raise AssertionError(f"no pprof-target listens on {ip}:{PORT}")


def _container_status(api: client.ApiClient, namespace: str, name: str) -> Any:
    return client.CoreV1Api(api).read_namespaced_pod(name, namespace).status.container_statuses[0]


def _restarted(api: client.ApiClient, namespace: str, name: str) -> Callable[[], Any]:
    def check() -> Any:
        status = _container_status(api, namespace, name)
        return status if status.restart_count == 1 and status.state.running else None

    return check


def _memory_bytes(api: client.ApiClient, namespace: str, name: str) -> int:
    from kubernetes.utils import parse_quantity  # type: ignore[import-untyped]

    metrics = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", namespace, "pods", name
    )
    return int(parse_quantity(metrics["containers"][0]["usage"]["memory"]))


def test_a_container_leaking_past_its_limit_is_oom_killed_and_runs_again(
    namespace: str,
    api: client.ApiClient,
    metrics_api: ControlPlane,
    wait_for: Callable[..., Any],
) -> None:
    pod = _create_pod(api, namespace, "leaky", wait_for, "128Mi")
    ip = pod.status.pod_ip
    before = _container_status(api, namespace, "leaky")
    first_pid = _process_of(ip)

    _get(ip, "/control/leak?mbPerSecond=20")
    leak_started = time.monotonic()
    wait_for(
        lambda: _memory_bytes(api, namespace, "leaky") > 64 * MiB,
        20,
        "metrics.k8s.io to see the leak pass 64Mi",
    )
    status = wait_for(_restarted(api, namespace, "leaky"), 30, "the OOM kill and the restart")
    killed_after = time.monotonic() - leak_started

    terminated = status.last_state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert terminated.container_id == before.container_id
    assert status.container_id != before.container_id
    assert status.ready and status.started
    assert status.state.running.started_at >= terminated.finished_at >= terminated.started_at
    # From ~10 MiB at start-up to 128 MiB at 20 MiB/s is ~6 s; the poll adds at most 0.1 s.
    assert 4 < killed_after < 15, killed_after

    assert _get(ip, "/healthz") == "ok\n"  # the same address, a new process
    second_pid = _process_of(ip)
    assert second_pid != first_pid
    assert not Path(f"/proc/{first_pid}").exists()
    wait_for(
        lambda: _memory_bytes(api, namespace, "leaky") < 64 * MiB,
        20,
        "metrics.k8s.io to report the restarted process, not the killed one",
    )
    pod = client.CoreV1Api(api).read_namespaced_pod("leaky", namespace)
    assert pod.status.phase == "Running"
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", None)


def test_a_container_within_its_limit_is_never_killed(
    namespace: str, api: client.ApiClient, wait_for: Callable[..., Any]
) -> None:
    pod = _create_pod(api, namespace, "steady", wait_for, "128Mi")
    ip = pod.status.pod_ip
    pid = _process_of(ip)
    _get(ip, "/control/alloc?mb=96")  # held, every page touched: well over half the limit
    time.sleep(3)

    status = _container_status(api, namespace, "steady")
    assert status.restart_count == 0
    assert status.state.running is not None
    assert _process_of(ip) == pid
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 96 * MiB < rss < 128 * MiB


def test_a_crashed_container_is_restarted_with_reason_error_and_its_exit_code(
    namespace: str, api: client.ApiClient, wait_for: Callable[..., Any]
) -> None:
    pod = _create_pod(api, namespace, "crashy", wait_for, None)
    ip = pod.status.pod_ip
    first_pid = _process_of(ip)
    os.kill(first_pid, signal.SIGQUIT)  # the Go runtime dumps its goroutines and exits 2

    status = wait_for(_restarted(api, namespace, "crashy"), 20, "the crash and the restart")
    terminated = status.last_state.terminated
    assert (terminated.reason, terminated.exit_code) == ("Error", 2)
    assert _get(ip, "/healthz") == "ok\n"
    assert _process_of(ip) != first_pid
