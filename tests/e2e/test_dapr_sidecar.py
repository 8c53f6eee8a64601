"""The real daprd, run with the flags Dapr's injector gives, and the operator with Dapr's defaults.

The pod stand-in runs daprd (built from github.com/dapr/dapr) as each Dapr pod's daprd container:
pprof on port 7777 of the pod's own loopback only (dapr.io/sidecar-listen-addresses defaults to
"[::1],127.0.0.1"), metrics on port 9090 of the pod IP. A kind dapr session with no access set
reaches the sidecar through the API server's port-forward.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    capture_dirs,
    captures_cli,
    create_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

from tests.pprof_top import go_tool_pprof, pprof_rows

pytestmark = pytest.mark.e2e
PROFILE_PORT = 7777
HTTP_PORT = 3500
METRICS_PORT = 9090


def create_dapr_pod(
    api: client.ApiClient, namespace: str, name: str, **annotations: str
) -> dict[str, Any]:
    """A pod as Dapr's injector leaves it: the app, and a container named daprd."""
    body = {
        "metadata": {
            "name": name,
            "labels": {"app": "sidecar"},
            "annotations": {
                "dapr.io/enabled": "true",
                "dapr.io/app-id": "checkout",
                "dapr.io/enable-profiling": "true",
                **annotations,
            },
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "checkout", "ports": [{"containerPort": 8080}]},
                {"name": "daprd", "image": "daprd", "ports": [{"containerPort": 3500}]},
            ]
        },
    }
    client.CoreV1Api(api).create_namespaced_pod(namespace, body)
    return body


def pod_ip(api: client.ApiClient, namespace: str, name: str) -> str:
    ip: str = client.CoreV1Api(api).read_namespaced_pod(name, namespace).status.pod_ip
    return ip


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def session(name: str, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    # No access: kind dapr's default (auto) must find the route by itself.
    return session_body(
        name,
        {
            "selector": {"matchLabels": {"app": "sidecar"}, "daprAppID": "checkout"},
            "target": {"kind": "dapr"},
            "profiles": profiles,
            "trigger": {"immediate": True},
            "output": {"volume": {}},
        },
    )


def test_daprd_serves_pprof_on_the_pods_loopback_only_and_metrics_on_its_ip(
    namespace: str,
    api: client.ApiClient,
    cluster: ControlPlane,
    wait_for: Callable[..., Any],
    kubectl_port_forward: Callable[[str, str, int], int],
) -> None:
    create_dapr_pod(api, namespace, "checkout-0")
    wait_running(api, namespace, "app=sidecar", 1, wait_for)
    ip = pod_ip(api, namespace, "checkout-0")

    assert refused(ip, PROFILE_PORT), "daprd's pprof must not answer on the pod IP"
    assert refused(ip, HTTP_PORT), "nor its HTTP API"
    with urllib.request.urlopen(f"http://{ip}:{METRICS_PORT}/metrics", timeout=10) as reply:
        assert b"process_cpu_seconds_total" in reply.read()
    # The app's view, from inside the pod: the real daprd, at the version built.
    loopback = json.loads(cluster.pods_file.read_text())[f"{namespace}/checkout-0"]["loopback"]
    with urllib.request.urlopen(f"http://{loopback}:{HTTP_PORT}/v1.0/metadata", timeout=10) as r:
        metadata = json.loads(r.read())
    assert (metadata["id"], metadata["runtimeVersion"]) == ("checkout", "1.16.5")

    local = kubectl_port_forward(namespace, "checkout-0", PROFILE_PORT)
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/debug/pprof/", timeout=10) as reply:
        assert b"Types of profiles available" in reply.read()


def test_a_dapr_session_with_defaults_captures_through_port_forward_and_says_why_block_is_empty(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_dapr_pod(api, namespace, "checkout-0")
    wait_running(api, namespace, "app=sidecar", 1, wait_for)
    profiles = [{"type": t} for t in ("heap", "goroutine", "block", "mutex", "allocs")]
    create_session(api, namespace, session("defaults", profiles))
    status = wait_captures(api, namespace, "defaults", 1, wait_for, timeout=90)
    last = status["lastCapture"]
    assert last["result"] == "Succeeded", (status, operator.log()[-5000:])

    [directory] = capture_dirs(operator.artifact_root)
    metadata = read_metadata(directory)
    assert (metadata["container"], metadata["access"]) == ("daprd", "portForward")
    by_type = {p["parameters"]["type"]: p for p in metadata["profiles"]}

    # daprd never turns block or mutex recording on: taken, empty, and the reason says why.
    assert "runtime.SetBlockProfileRate" in by_type["block"]["empty"]["reason"]
    assert "runtime.SetMutexProfileFraction" in by_type["mutex"]["empty"]["reason"]
    assert {(e["type"], e["pod"]) for e in last["empty"]} == {
        ("block", "checkout-0"),
        ("mutex", "checkout-0"),
    }
    assert "empty" not in by_type["heap"] and "empty" not in by_type["goroutine"]

    # go tool pprof reads every file, and our top is its -top on daprd's own profiles.
    for kind in ("heap", "goroutine", "allocs"):
        path = directory / by_type[kind]["file"]
        for sample_type in by_type[kind]["summary"]["sampleTypes"]:
            expected = pprof_rows(path, sample_type["type"], sample_type["unit"])
            ours = [(f["function"], f["flat"], f["cum"]) for f in sample_type["functions"]]
            assert ours == [(name, flat, cum) for name, flat, _, cum, _ in expected][:20]
    for kind in ("block", "mutex"):
        assert "flat%" in go_tool_pprof("-top", str(directory / by_type[kind]["file"]))

    shown = captures_cli(
        operator.artifact_root, "show", f"{namespace}/defaults/checkout-0/{metadata['captureId']}"
    )
    assert "(empty) 0 samples: the program does not record block events" in shown


def test_a_sidecar_listening_on_all_addresses_is_dialed_directly(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_dapr_pod(api, namespace, "open-0", **{"dapr.io/sidecar-listen-addresses": "0.0.0.0"})
    wait_running(api, namespace, "app=sidecar", 1, wait_for)
    ip = pod_ip(api, namespace, "open-0")
    with urllib.request.urlopen(f"http://{ip}:{PROFILE_PORT}/debug/pprof/", timeout=10) as reply:
        assert reply.status == 200

    create_session(api, namespace, session("open", [{"type": "goroutine"}]))
    status = wait_captures(api, namespace, "open", 1, wait_for, timeout=90)
    assert status["lastCapture"]["result"] == "Succeeded", (status, operator.log()[-5000:])
    [directory] = capture_dirs(operator.artifact_root)
    metadata = read_metadata(directory)
    assert (metadata["access"], metadata["endpoint"]) == (
        "direct",
        f"http://{ip}:{PROFILE_PORT}/debug/pprof",
    )
