"""Arming Dapr workloads: profiling turned on in the pod template ahead of the spike, the rollout
through the real controller-manager, and the template restored exactly when sessions end."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]

from .conftest import REPO_ROOT, Operator
from .sessions import (
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
    namespace: str, api: client.ApiClient, operator: Operator, wait_for: Callable[..., Any]
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
    namespace: str, api: client.ApiClient, operator: Operator, wait_for: Callable[..., Any]
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
    namespace: str, api: client.ApiClient, operator: Operator, wait_for: Callable[..., Any]
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
    namespace: str, api: client.ApiClient, operator: Operator, wait_for: Callable[..., Any]
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


def test_the_readme_dapr_how_to_goes_from_app_to_flame_graph_and_back(
    namespace: str,
    api: client.ApiClient,
    operator: Operator,
    kubectl: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    """examples/dapr-checkout-app.yaml and dapr-profiling-session.yaml, applied as written."""
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

    status = wait_captures(api, namespace, "checkout-dapr", 1, wait_for, timeout=120)
    assert status["phase"] == "Armed", status
    assert status["lastCapture"]["result"] == "Succeeded", (status, operator.log()[-5000:])
    directories = capture_dirs(operator.artifact_root)
    assert len(directories) == 2
    for directory in directories:
        metadata = read_metadata(directory)
        assert (metadata["container"], metadata["access"]) == ("daprd", "direct")
        cpu = next(p for p in metadata["profiles"] if p["parameters"]["type"] == "cpu")
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
