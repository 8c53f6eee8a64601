"""Arming Dapr workloads: profiling turned on in the pod template ahead of the spike, the rollout
through the real controller-manager, and the template restored exactly when sessions end."""

from __future__ import annotations

import copy
import http.client
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    GROUP,
    PLURAL,
    VERSION,
    capture_dirs,
    create_session,
    get_session,
    read_metadata,
    session_body,
    wait_captures,
)

from tests.pprof_top import go_tool_pprof, pprof_rows

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
EXAMPLES = REPO_ROOT / "examples"
DAPR = {"dapr.io/enabled": "true", "dapr.io/app-id": "checkout", "team": "shop"}


def _template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}, "annotations": dict(DAPR)},
        "spec": {
            "containers": [
                {"name": "app", "image": "checkout", "ports": [{"containerPort": 8080}]},
                {"name": "daprd", "image": "daprd", "ports": [{"containerPort": 3500}]},
            ]
        },
    }


def _deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": _template(name),
        },
    }


def _session(name: str, app: str, **target: Any) -> dict[str, Any]:
    # Deployments and the StatefulSet are selected by label; the Dapr app id narrows it further.
    return session_body(
        name,
        {
            "selector": {"matchLabels": {"app": app}, "daprAppID": "checkout"},
            "target": {"kind": "dapr", "enableProfiling": True, **target},
            "profiles": [{"type": "heap"}, {"type": "goroutine"}],
            "trigger": {"immediate": True},
            "output": {"volume": {}},
        },
    )


def _condition(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    conditions = get_session(api, namespace, name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "ProfilingEnabled"), {})


def _delete_session(
    api: client.ApiClient, namespace: str, name: str, wait_for: Callable[..., Any]
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def gone() -> bool:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 60, f"session {name} to be deleted")


def test_a_deployment_is_armed_then_captured_then_restored_exactly(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("checkout"))
    before = copy.deepcopy(
        apps.read_namespaced_deployment("checkout", namespace).spec.template.to_dict()
    )
    create_session(api, namespace, _session("arm", "checkout"))

    seen_arming = wait_for(
        lambda: (
            get_session(api, namespace, "arm").get("status", {}).get("phase") in ("Arming", "Armed")
        ),
        60,
        "arming",
    )
    assert seen_arming
    template = apps.read_namespaced_deployment(
        "checkout", namespace
    ).spec.template.metadata.annotations
    assert template["dapr.io/enable-profiling"] == "true"
    status = wait_captures(api, namespace, "arm", 1, wait_for, timeout=120)
    assert status["phase"] == "Armed"
    assert status["armedWorkloads"] == ["Deployment/checkout"]
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds["TargetsReachable"] == kinds["Ready"] == kinds["ProfilingEnabled"] == "True"
    condition = _condition(api, namespace, "arm")
    assert (condition["status"], condition["reason"]) == ("True", "Armed")
    assert "Deployment/checkout" in condition["message"]
    assert status["lastCapture"]["result"] == "Succeeded"
    assert len(capture_dirs(operator.artifact_root)) == 2  # both pods, through daprd's :7777

    _delete_session(api, namespace, "arm", wait_for)
    deployment = apps.read_namespaced_deployment("checkout", namespace)
    assert deployment.spec.template.to_dict() == before
    assert not any(k.startswith("spikeprof.io/") for k in (deployment.metadata.annotations or {}))


def test_two_sessions_share_a_workload_and_the_last_one_restores_it(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("checkout", replicas=1))
    create_session(api, namespace, _session("first", "checkout"))
    create_session(api, namespace, _session("second", "checkout"))
    for name in ("first", "second"):
        wait_for(
            lambda n=name: _condition(api, namespace, n).get("reason") == "Armed",
            120,
            f"{name} armed",
        )
    annotations = apps.read_namespaced_deployment("checkout", namespace).metadata.annotations
    assert annotations["spikeprof.io/armed-by"] == f"{namespace}/first,{namespace}/second"

    _delete_session(api, namespace, "first", wait_for)
    deployment = apps.read_namespaced_deployment("checkout", namespace)
    assert deployment.spec.template.metadata.annotations["dapr.io/enable-profiling"] == "true"
    assert deployment.metadata.annotations["spikeprof.io/armed-by"] == f"{namespace}/second"

    _delete_session(api, namespace, "second", wait_for)
    deployment = apps.read_namespaced_deployment("checkout", namespace)
    assert "dapr.io/enable-profiling" not in deployment.spec.template.metadata.annotations
    assert "spikeprof.io/armed-by" not in (deployment.metadata.annotations or {})


def test_a_statefulset_is_armed_and_restored(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "ledger"},
            "spec": {
                "replicas": 1,
                "serviceName": "ledger",
                "selector": {"matchLabels": {"app": "ledger"}},
                "template": _template("ledger"),
            },
        },
    )
    create_session(api, namespace, _session("ledger", "ledger"))
    wait_captures(api, namespace, "ledger", 1, wait_for, timeout=120)
    assert get_session(api, namespace, "ledger")["status"]["armedWorkloads"] == [
        "StatefulSet/ledger"
    ]
    _delete_session(api, namespace, "ledger", wait_for)
    template = apps.read_namespaced_stateful_set(
        "ledger", namespace
    ).spec.template.metadata.annotations
    assert "dapr.io/enable-profiling" not in template


def test_bare_pods_are_never_patched_and_dry_run_changes_nothing(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    bare = _template("loner")
    bare["metadata"]["name"] = "loner"
    client.CoreV1Api(api).create_namespaced_pod(namespace, bare)
    create_session(api, namespace, _session("bare", "loner"))
    condition = wait_for(
        lambda: (c := _condition(api, namespace, "bare")).get("reason") == "BarePods" and c,
        60,
        "BarePods",
    )
    assert "loner have no Deployment, StatefulSet or DaemonSet to patch" in condition["message"]
    assert get_session(api, namespace, "bare")["status"]["phase"] == "Arming"
    assert capture_dirs(operator.artifact_root) == [], "no capture while not armed"

    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=1))
    create_session(api, namespace, _session("dry", "web", dryRun=True))
    condition = wait_for(
        lambda: (c := _condition(api, namespace, "dry")).get("reason") == "DryRun" and c,
        60,
        "DryRun",
    )
    assert (
        "would set dapr.io/enable-profiling on Deployment/web; nothing changed"
        in condition["message"]
    )
    template = apps.read_namespaced_deployment("web", namespace).spec.template.metadata.annotations
    assert "dapr.io/enable-profiling" not in template


class DaprdLoad:
    """Clients calling daprd's HTTP API (GET /v1.0/metadata) as fast as they can, as the app
    in the pod would: on the pod's own loopback, where daprd listens by default."""

    def __init__(self, host: str, clients: int = 6) -> None:
        self.host = host
        self.stopping = threading.Event()
        self.requests = 0
        self.threads = [threading.Thread(target=self._call, daemon=True) for _ in range(clients)]

    def _call(self) -> None:
        connection = http.client.HTTPConnection(self.host, 3500, timeout=5)
        while not self.stopping.is_set():
            connection.request("GET", "/v1.0/metadata")
            reply = connection.getresponse()
            reply.read()
            assert reply.status == 200, reply.status
            self.requests += 1

    def __enter__(self) -> DaprdLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)


def _pod_loopback(cluster: ControlPlane, namespace: str, pod: str) -> str:
    """The stand-in pod's own 127.0.0.1 (pods share the machine's network namespace)."""
    entries = json.loads(cluster.pods_file.read_text())
    loopback: str = entries[f"{namespace}/{pod}"]["loopback"]
    return loopback


def test_the_readme_dapr_how_to_captures_a_busy_daprd_and_restores_the_deployment(
    namespace: str,
    api: client.ApiClient,
    cluster: ControlPlane,
    operator: OperatorProcess,
    kubectl: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    """examples/dapr-checkout-app.yaml and dapr-profiling-session.yaml, applied as written,
    with the real daprd and Dapr's default listen addresses."""
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "dapr-checkout-app.yaml"))
    apps = client.AppsV1Api(api)
    wait_for(
        lambda: (
            (apps.read_namespaced_deployment("checkout-dapr", namespace).status.ready_replicas) == 2
        ),
        60,
        "the Dapr app's two pods",
    )
    before = apps.read_namespaced_deployment("checkout-dapr", namespace).spec.template.to_dict()
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "dapr-profiling-session.yaml"))
    wait_for(
        lambda: (
            get_session(api, namespace, "checkout-dapr").get("status", {}).get("phase") == "Armed"
        ),
        120,
        "the session armed: both pods re-created with profiling",
    )
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=checkout-dapr")
    armed = [
        p.metadata.name
        for p in pods.items
        if (p.metadata.annotations or {}).get("dapr.io/enable-profiling") == "true"
        and p.metadata.deletion_timestamp is None
    ]
    assert len(armed) == 2, armed
    busy = armed[0]  # the other pod's daprd stays idle, under the threshold

    with DaprdLoad(_pod_loopback(cluster, namespace, busy)) as load:
        status = wait_captures(api, namespace, "checkout-dapr", 1, wait_for, timeout=120)
    assert load.requests > 0
    last = status["lastCapture"]
    assert (last["result"], last["trigger"]) == ("Succeeded", "threshold"), (
        status,
        operator.log()[-5000:],
    )
    assert last["reason"].startswith(f"{busy}: daprd-busy: cpu "), last["reason"]
    [directory] = capture_dirs(operator.artifact_root)
    assert directory.parts[-2] == busy
    metadata = read_metadata(directory)
    # The default route: daprd's pprof is on the pod's loopback, so only port-forward reaches it.
    assert (metadata["container"], metadata["access"]) == ("daprd", "portForward")
    by_type = {p["parameters"]["type"]: p for p in metadata["profiles"]}
    for profile in by_type.values():
        assert "flat%" in go_tool_pprof("-top", str(directory / profile["file"]))
    for kind in ("heap", "goroutine"):
        path = directory / by_type[kind]["file"]
        for sample_type in by_type[kind]["summary"]["sampleTypes"]:
            expected = pprof_rows(path, sample_type["type"], sample_type["unit"])
            ours = [(f["function"], f["flat"], f["cum"]) for f in sample_type["functions"]]
            assert ours == [(name, flat, cum) for name, flat, _, cum, _ in expected][:20]
    cpu = by_type["cpu"]
    assert "empty" not in cpu, "daprd was busy: its CPU profile has samples"
    assert (directory / cpu["flamegraph"]).read_text().startswith("<!DOCTYPE html>")

    kubectl("delete", "-n", namespace, "-f", str(EXAMPLES / "dapr-profiling-session.yaml"))
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("checkout-dapr", namespace).spec.template.to_dict()
            == before
        ),
        30,
        "the Deployment's template restored",
    )
