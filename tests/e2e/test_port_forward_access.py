"""Reaching pprof through the API server's pods/portforward, for pods the operator cannot dial.

The port-forward goes through the real kube-apiserver (its pods/portforward subresource,
authorization and upgrade proxy) to the harness's kubelet stand-in, which runs the kubelet's own
port-forward server (k8s.io/cri-streaming) and connects to the stand-in pod. Pods annotated
`stand-in.spikeprof.io/unroutable` report a pod IP that never answers, as when the operator runs
outside the cluster.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    create_session,
    get_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
UNROUTABLE = "stand-in.spikeprof.io/unroutable"
CHART = REPO_ROOT / "charts" / "spikeprof"


def _dapr_pod(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    unroutable: bool,
    listen_addresses: str | None = None,
) -> None:
    annotations = {
        "dapr.io/enabled": "true",
        "dapr.io/app-id": "checkout",
        "dapr.io/enable-profiling": "true",
    }
    if listen_addresses is not None:  # Dapr's default is the pod's loopback only
        annotations["dapr.io/sidecar-listen-addresses"] = listen_addresses
    if unroutable:
        annotations[UNROUTABLE] = "true"
    client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": {"app": "pf"}, "annotations": annotations},
            "spec": {
                "containers": [
                    {"name": "app", "image": "checkout", "ports": [{"containerPort": 8080}]},
                    {"name": "daprd", "image": "daprd", "ports": [{"containerPort": 3500}]},
                ]
            },
        },
    )


def _session(name: str, access: str, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    return session_body(
        name,
        {
            "selector": {"matchLabels": {"app": "pf"}, "daprAppID": "checkout"},
            "target": {"kind": "dapr", "access": access},
            "profiles": profiles,
            "trigger": {"immediate": True},
            "output": {"volume": {}},
        },
    )


def _by_pod(root: Path) -> dict[str, dict[str, Any]]:
    return {directory.parts[-2]: read_metadata(directory) for directory in capture_dirs(root)}


def test_port_forward_captures_a_pod_whose_ip_does_not_answer(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    _dapr_pod(api, namespace, "hidden-0", unroutable=True)
    wait_running(api, namespace, "app=pf", 1, wait_for)
    profiles = [{"type": "cpu", "duration": "1s"}, {"type": "heap"}, {"type": "goroutine"}]
    create_session(api, namespace, _session("tunnel", "portForward", profiles))
    status = wait_captures(api, namespace, "tunnel", 1, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded", (status, operator.log()[-5000:])

    [directory] = capture_dirs(operator.artifact_root)
    metadata = read_metadata(directory)
    assert metadata["access"] == "portForward"
    assert metadata["endpoint"] == (
        f"http://hidden-0.{namespace}.port-forward.invalid:7777/debug/pprof"
    )
    assert metadata["container"] == "daprd"
    assert {p["file"] for p in metadata["profiles"]} == {
        "cpu.pb.gz",
        "heap.pb.gz",
        "goroutine.pb.gz",
    }
    # Every byte came through the websocket: go tool pprof reads what was written.
    for name in ("cpu.pb.gz", "heap.pb.gz"):
        shown = subprocess.run(
            ["go", "tool", "pprof", "-top", str(directory / name)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "flat%" in shown.stdout


def test_auto_dials_pods_that_answer_and_tunnels_to_the_others(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    _dapr_pod(api, namespace, "seen-0", unroutable=False, listen_addresses="0.0.0.0")
    _dapr_pod(api, namespace, "hidden-0", unroutable=True, listen_addresses="0.0.0.0")
    wait_running(api, namespace, "app=pf", 2, wait_for)
    create_session(api, namespace, _session("either", "auto", [{"type": "goroutine"}]))
    status = wait_captures(api, namespace, "either", 1, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded", (status, operator.log()[-5000:])
    metadata = _by_pod(operator.artifact_root)
    assert metadata["seen-0"]["access"] == "direct"
    assert metadata["hidden-0"]["access"] == "portForward"
    assert all(m["profiles"][0]["bytes"] > 0 for m in metadata.values())


def test_a_port_nothing_listens_on_fails_the_capture_with_the_kubelets_reason(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    _dapr_pod(api, namespace, "hidden-0", unroutable=True)
    wait_running(api, namespace, "app=pf", 1, wait_for)
    body = _session("wrong-port", "portForward", [{"type": "heap"}])
    body["spec"]["target"]["port"] = 7070  # nothing listens there
    create_session(api, namespace, body)
    status = wait_captures(api, namespace, "wrong-port", 1, wait_for)
    assert status["lastCapture"]["result"] == "Failed"
    [failure] = status["lastCapture"]["failures"]
    assert failure["reason"] == "ConnectionRefused", failure
    assert f"port-forward to pod {namespace}/hidden-0 port 7070" in failure["message"]
    assert "connection refused" in failure["message"]


def _chart_role_rules(namespace: str, *, port_forward: bool) -> list[dict[str, Any]]:
    """The rules of the Role the chart gives a namespaced operator, as `helm template` renders."""
    rendered = subprocess.run(
        [
            str(REPO_ROOT / ".cluster" / "bin" / "helm"),
            "template",
            "spikeprof",
            str(CHART),
            "--kube-version=1.37.2",  # this helm has no version stamp of its own (1.20)
            "--set=watch.mode=namespaced",
            f"--set=watch.namespaces={{{namespace}}}",
            f"--set=rbac.portForward={str(port_forward).lower()}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The Role in the watched namespace (the chart's Lease Role lives in the release namespace).
    [role] = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Role" and d["metadata"]["namespace"] == namespace
    ]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def test_port_forward_needs_the_charts_rbac_flag(
    api: client.ApiClient,
    cluster: ControlPlane,
    namespace: str,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    kubeconfig = cluster.service_account_with_rules(
        namespace,
        "spikeprof",
        _chart_role_rules(namespace, port_forward=False),
        tmp_path / "operator.kubeconfig",
    )
    operator = OperatorProcess(
        kubeconfig, tmp_path / "artifacts", tmp_path / "operator.log", [namespace]
    )
    _dapr_pod(api, namespace, "hidden-0", unroutable=True)
    wait_running(api, namespace, "app=pf", 1, wait_for)
    operator.start()
    try:
        create_session(api, namespace, _session("rbac", "portForward", [{"type": "heap"}]))
        status = wait_captures(api, namespace, "rbac", 1, wait_for)
        assert status["lastCapture"]["result"] == "Failed", operator.log()[-5000:]
        [failure] = status["lastCapture"]["failures"]
        assert "HTTP 403" in failure["message"], failure
        assert "pods/portforward" in failure["message"]
        assert "rbac.portForward=true" in failure["message"]
        # The session said so before any capture was due, from an access review.
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["PortForwardAllowed"]["status"] == "False"
        assert conditions["PortForwardAllowed"]["reason"] == "Forbidden"

        # The chart's flag grants exactly what was missing: the next capture comes through.
        client.RbacAuthorizationV1Api(api).replace_namespaced_role(
            "spikeprof",
            namespace,
            {
                "metadata": {"name": "spikeprof"},
                "rules": _chart_role_rules(namespace, port_forward=True),
            },
        )
        annotate_session(api, namespace, "rbac", "spikeprof.io/capture-now", "with-rights")
        status = wait_captures(api, namespace, "rbac", 2, wait_for)
        assert status["lastCapture"]["result"] == "Succeeded", operator.log()[-5000:]
        assert status["captures"]["failed"] == 1
        wait_for(
            lambda: any(
                (c["type"], c["status"]) == ("PortForwardAllowed", "True")
                for c in get_session(api, namespace, "rbac")["status"]["conditions"]
            ),
            30,
            "PortForwardAllowed=True once the Role grants it",
        )
    finally:
        operator.stop()
