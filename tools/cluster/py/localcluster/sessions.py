"""Pods that run pprof-target, ProfilingSessions and reading their status: what tests,
benchmarks and the demo do with the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client  # type: ignore[import-untyped]

GROUP, VERSION, PLURAL = "spikeprof.io", "v1alpha1", "profilingsessions"


def create_pod(
    api: client.ApiClient,
    namespace: str,
    name: str,
    labels: dict[str, str],
    *,
    port: int | None = 7777,
    args: str = "",
    cpu_limit: str | None = None,
    memory_limit: str | None = None,
) -> None:
    """A bare pod; the stand-in runs pprof-target on its IP and `port` (None: nothing listens).
    Past `memory_limit` the stand-in kills it as the kernel would (OOMKilled) and restarts it."""
    annotations = {"stand-in.spikeprof.io/args": args} if args else {}
    ports = [{"containerPort": port}] if port else []
    container: dict[str, Any] = {"name": "app", "image": "pprof-target", "ports": ports}
    bounds = {"cpu": cpu_limit, "memory": memory_limit}
    limits = {resource: value for resource, value in bounds.items() if value}
    if limits:
        container["resources"] = {"limits": limits, "requests": dict(limits)}
    client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"containers": [container]},
        },
    )


def wait_running(
    api: client.ApiClient, namespace: str, selector: str, count: int, wait_for: Callable[..., Any]
) -> dict[str, str]:
    """name -> pod IP, once `count` pods matching `selector` run."""
    core = client.CoreV1Api(api)

    def running() -> dict[str, str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        ips = {p.metadata.name: p.status.pod_ip for p in pods if p.status.phase == "Running"}
        return ips if len(ips) == count else None

    result: dict[str, str] = wait_for(running, 60, f"{count} running pods {selector}")
    return result


def control(ip: str, path: str, port: int = 7777) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/control/{path}", timeout=5) as reply:
        return reply.read().decode()


def session_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProfilingSession",
        "metadata": {"name": name},
        "spec": spec,
    }


def create_session(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


def get_session(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def annotate_session(
    api: client.ApiClient, namespace: str, name: str, key: str, value: str
) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": {key: value}}}
    )


def wait_captures(
    api: client.ApiClient,
    namespace: str,
    name: str,
    total: int,
    wait_for: Callable[..., Any],
    timeout: float = 90,
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = get_session(api, namespace, name).get("status") or {}
        captures = status.get("captures") or {}
        return (
            status
            if captures.get("total", 0) >= total and not status.get("pendingCapture")
            else None
        )

    result: dict[str, Any] = wait_for(done, timeout, f"{total} capture(s) of {name}")
    return result


def session_events(api: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    return [(e.type, e.reason, e.message) for e in events]


def capture_dirs(root: Path) -> list[Path]:
    """Published capture directories (those with metadata.json) under an artifact root."""
    return sorted(p.parent for p in root.rglob("metadata.json"))


def read_metadata(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "metadata.json").read_text())
    return data


def create_namespace(
    api: client.ApiClient, name: str, wait_for: Callable[..., Any], timeout: float = 30
) -> None:
    """A namespace, returned once its ServiceAccount `default` exists (pods need it)."""
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})

    def has_default_service_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except client.ApiException:
            return False  # not made yet by the controller-manager
        return True

    wait_for(has_default_service_account, timeout, f"ServiceAccount default in {name}")


def captures_cli(artifact_root: Path, *args: str) -> str:
    """What `spikeprof captures <args> --root <artifact_root>` prints; a failure fails the test."""
    command = [sys.executable, "-m", "spikeprof.cli", "captures", *args]
    command += ["--root", str(artifact_root)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
