"""The local control plane is a real Kubernetes: CEL validation, controllers, pods with pprof."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e


def test_api_server_reports_the_pinned_version(api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.37.2"
    assert (info.major, info.minor) == ("1", "37")


def test_crd_cel_rule_accepts_good_and_rejects_bad_with_its_message(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    good = f"""
apiVersion: spikeprof.io/v1alpha1
kind: ProfilingSession
metadata: {{name: good, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  profiles: [{{type: cpu, duration: 10s}}]
  output: {{volume: {{}}}}
"""
    kubectl("apply", "-f", "-", input=good)
    bad = good.replace("name: good", "name: bad").replace("duration: 10s", "duration: 10m")
    result = kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "profile duration must be between 1s and 5m" in result.stderr


def test_deployment_scales_to_three_running_pods_with_their_own_loopback_ips(
    namespace: str, api: client.ApiClient, wait_for: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=1))
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})

    def running_pods() -> list[Any]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        running = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
        return running if len(running) == 3 else []

    pods = wait_for(running_pods, 60, "3 running pods")
    ips = {p.status.pod_ip for p in pods}
    assert len(ips) == 3
    assert all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    assert all(p.spec.node_name == "stand-in-node" for p in pods)
    # Each address answers with the pod's own pprof-target.
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:7777/healthz", timeout=5) as reply:
            assert reply.read().strip() == b"ok"


def test_cpu_profile_from_a_pod_ip_is_read_by_go_tool_pprof(
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("burner", replicas=1, args="-burn=1"))

    def pod_ip() -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=burner").items
        return next((p.status.pod_ip for p in pods if p.status.phase == "Running"), None)

    ip = wait_for(pod_ip, 60, "a running burner pod")
    profile = tmp_path / "cpu.pb.gz"
    with urllib.request.urlopen(
        f"http://{ip}:7777/debug/pprof/profile?seconds=2", timeout=30
    ) as reply:
        profile.write_bytes(reply.read())
    top = subprocess.run(
        ["go", "tool", "pprof", "-top", str(profile)], capture_output=True, text=True, timeout=120
    )
    assert top.returncode == 0, top.stderr
    assert "Type: cpu" in top.stdout
    assert "main.burnCPU" in top.stdout


def test_pods_stop_when_deleted(
    namespace: str, api: client.ApiClient, wait_for: Callable[..., Any]
) -> None:
    core = client.CoreV1Api(api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="lonely", labels={"app": "lonely"}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="app",
                    image="pprof-target",
                    ports=[client.V1ContainerPort(container_port=7777)],
                )
            ]
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    ip = wait_for(lambda: core.read_namespaced_pod("lonely", namespace).status.pod_ip, 60, "pod IP")
    core.delete_namespaced_pod("lonely", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("lonely", namespace)
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 30, "the pod object to go")
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://{ip}:7777/healthz", timeout=2)


def test_service_account_kubeconfig_has_exactly_its_rbac(
    cluster: ControlPlane, namespace: str, api: client.ApiClient, tmp_path: Path, bin_dir: Path
) -> None:
    kubeconfig = cluster.service_account_with_rules(
        namespace,
        "reader",
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        tmp_path / "reader.kubeconfig",
    )

    def can(verb: str, resource: str) -> str:
        out = subprocess.run(
            [
                str(bin_dir / "kubectl"),
                f"--kubeconfig={kubeconfig}",
                "auth",
                "can-i",
                verb,
                resource,
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    assert can("list", "pods") == "yes"
    assert can("delete", "pods") == "no"
    assert can("list", "secrets") == "no"


def _deployment(name: str, *, replicas: int, args: str = "") -> dict[str, Any]:
    annotations = {"stand-in.spikeprof.io/args": args} if args else {}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "pprof-target", "ports": [{"containerPort": 7777}]}
                    ]
                },
            },
        },
    }
