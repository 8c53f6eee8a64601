"""The operator image, built with buildah (`make image`) and run with podman exactly as the
chart's Deployment runs it, captures on a threshold and on an alert.

The chart is installed into the local control plane (with no replica: no kubelet would run it);
its Deployment's pod template is then run with podman (podman_pod.py): UID 65532, read-only root,
/tmp a tmpfs, the artifact volume a host directory, the chart's env and args, and a token of the
chart's ServiceAccount mounted where the kubelet mounts it, so that the operator finds the API
server by in-cluster config and every call it makes goes through the chart's RBAC.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.peers import require_binary
from localcluster.processes import free_port
from localcluster.sessions import (
    capture_dirs,
    control,
    create_pod,
    create_session,
    get_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

from .conftest import REPO_ROOT
from .podman_pod import PodmanPod, write_service_account_dir

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "spikeprof"
BUILD_SCRIPT = REPO_ROOT / "tools" / "image" / "build.sh"
ALERTS_TOKEN = "image-alerts-token"
USER = 65532
RBAC_DENIAL = re.compile(r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot ')


@pytest.fixture(scope="session")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`make image`'s script: cached, so a warm build reuses every layer; returns the tag."""
    for name in ("buildah", "podman", "mmdebstrap"):
        require_binary(name)  # a missing one fails the test, it never skips it
    log = tmp_path_factory.mktemp("image") / "build.log"
    with log.open("w") as stderr:
        result = subprocess.run(
            [str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=1800
        )
    if result.returncode != 0:
        raise AssertionError(f"{BUILD_SCRIPT} failed:\n{log.read_text()[-5000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def release_namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"spikeprof-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(Exception):
        core.delete_namespace(name)


def _helm(
    cluster: ControlPlane, bin_dir: Path, home: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # helm keeps caches and settings under these; the test's own directory keeps $HOME clean.
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    result = subprocess.run(
        [str(bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert not check or result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    """The plain values of the operator container's environment in the chart's Deployment."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var["value"] for var in container["env"] if "value" in var}


def _host_volume(path: Path, files: dict[str, str] | None = None) -> Path:
    """A volume directory as the kubelet leaves it with fsGroup 65532: group-owned, setgid."""
    path.mkdir(parents=True)
    os.chown(path, 0, USER)
    path.chmod(0o2775)
    for name, content in (files or {}).items():
        (path / name).write_text(content)
        os.chown(path / name, 0, USER)
        (path / name).chmod(0o644)
    return path


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _post_alert(port: int, namespace: str, pod: str) -> tuple[int, dict[str, Any]]:
    labels = {"alertname": "GoProcessCPUHigh", "spikeprof": "capture", "namespace": namespace}
    body = {
        "version": "4",
        "status": "firing",
        "groupKey": '{}:{alertname="GoProcessCPUHigh"}',
        "receiver": "spikeprof",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "pod": pod},
                "annotations": {},
                "startsAt": "2026-12-01T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"fp-{pod}",
            }
        ],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alerts",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ALERTS_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, json.loads(reply.read())


def _assert_capture_files(artifacts: Path, pod: str, files: set[str]) -> None:
    [directory] = [d for d in capture_dirs(artifacts) if d.parent.name == pod]
    assert {p["file"] for p in read_metadata(directory)["profiles"]} == files
    for name in files:
        path = directory / name
        assert path.stat().st_size > 0
        assert path.stat().st_uid == USER, "written by the image's user"


def test_the_image_run_as_the_charts_deployment_captures_on_a_threshold_and_on_an_alert(
    operator_image: str,
    cluster: ControlPlane,
    bin_dir: Path,
    namespace: str,
    release_namespace: str,
    api: client.ApiClient,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    release = release_namespace  # contains "spikeprof": the objects are named after the release
    health, metrics, alerts = free_port(), free_port(), free_port()
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        release_namespace,
        {"metadata": {"name": "alerts-token"}, "stringData": {"token": ALERTS_TOKEN}},
    )
    values = {
        "crds": {"install": False},  # the cluster fixture applied it from crds/
        "replicas": 0,  # no kubelet runs pods here: podman runs the pod template below
        "watch": {"mode": "namespaced", "namespaces": [namespace]},
        "health": {"port": health},
        # The host's network is shared: free ports, and /metrics and /alerts on loopback.
        "metrics": {"port": metrics, "address": "127.0.0.1"},
        "alerts": {"port": alerts, "tokenSecret": "alerts-token"},
        "extraEnv": [{"name": "SPIKEPROF_ALERTS_ADDRESS", "value": "127.0.0.1"}],
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm_home = tmp_path / "helm"
    _helm(
        cluster,
        bin_dir,
        helm_home,
        "install",
        release,
        str(CHART),
        f"--namespace={release_namespace}",
        f"--values={values_file}",
    )
    pod: PodmanPod | None = None
    try:
        deployment = json.loads(
            kubectl("get", "deployment", release, "-n", release_namespace, "-o", "json").stdout
        )
        kubeconfig = cluster.service_account_kubeconfig(
            release_namespace, release, tmp_path / "service-account.kubeconfig"
        )
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        secret = core.read_namespaced_secret("alerts-token", release_namespace)
        artifacts = _host_volume(tmp_path / "artifacts")
        pod = PodmanPod(
            deployment,
            operator_image,
            api_host="127.0.0.1",
            api_port=cluster.api_port,
            service_account_dir=write_service_account_dir(
                tmp_path / "serviceaccount", token, cluster.ca_cert, release_namespace
            ),
            volume_dirs={
                "artifacts": artifacts,
                "alerts-token": _host_volume(
                    tmp_path / "alerts-token",
                    {k: base64.b64decode(v).decode() for k, v in secret.data.items()},
                ),
            },
        )
        command = pod.command()
        print(" ".join(command))
        for flag in (f"--user={USER}:{USER}", "--read-only", "--cap-drop=ALL", "--network=host"):
            assert flag in command
        assert any(f.startswith("--tmpfs=/tmp:") for f in command)
        pod.start()

        # The chart's liveness probe: kopf's /healthz on the health port.
        liveness = f"http://127.0.0.1:{health}/healthz"
        wait_for(lambda: _get(liveness) == 200, 60, f"{liveness} to answer 200")
        # Leader election is on by default, even with one replica: the pod takes the chart's
        # Lease in the release namespace (through the chart's Role) under its own name, and the
        # readiness probe, /readyz on the alert port, answers 200 once it leads.
        readiness = f"http://127.0.0.1:{alerts}/readyz"
        wait_for(lambda: _get(readiness) == 200, 60, f"{readiness} to answer 200")
        lease_name = _env(deployment)["SPIKEPROF_LEADER_ELECTION_LEASE"]
        leases = client.CoordinationV1Api(api)
        lease = leases.read_namespaced_lease(lease_name, release_namespace)
        assert lease.spec.holder_identity == pod.name
        # Inside, as in the pod: the image's user, and nothing writable but /tmp and the volumes.
        assert pod.exec("id", "-u").stdout.strip() == str(USER)
        assert pod.exec("touch", "/opt/spikeprof/x").returncode != 0
        assert pod.exec("touch", "/tmp/x").returncode == 0

        # A threshold capture: the scrape source sees hot-a burn CPU above 60% of its limit.
        for name in ("hot-a", "hot-b"):
            create_pod(api, namespace, name, {"app": "hot"}, cpu_limit="500m")
        ips = wait_running(api, namespace, "app=hot", 2, wait_for)
        rule = {"name": "cpu-hot", "metric": "cpu", "above": "60%", "of": "limit", "for": "2s"}
        spec = {
            "selector": {"matchLabels": {"app": "hot"}},
            "target": {"port": 7777},
            "profiles": [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}],
            "trigger": {"metricsSource": "scrape", "interval": "1s", "thresholds": [rule]},
            "limits": {"cooldown": "10m"},
            "output": {"volume": {}},
        }
        create_session(api, namespace, session_body("spikes", spec))
        wait_for(
            lambda: any(
                c["type"] == "MetricsAvailable" and c["status"] == "True"
                for c in get_session(api, namespace, "spikes")
                .get("status", {})
                .get("conditions", [])
            ),
            60,
            "scrape metrics to arrive",
        )
        control(ips["hot-a"], "burn?cores=1&seconds=60")
        try:
            status = wait_captures(api, namespace, "spikes", 1, wait_for, timeout=120)
        finally:
            control(ips["hot-a"], "reset")
        assert status["lastCapture"]["trigger"] == "threshold"
        assert status["lastCapture"]["result"] == "Succeeded", status["lastCapture"]
        assert status["lastCapture"]["reason"].startswith("hot-a: cpu-hot: cpu ")
        _assert_capture_files(artifacts, "hot-a", {"cpu.pb.gz", "goroutine.pb.gz"})

        # An alert capture: Alertmanager's webhook, with the token from the chart's Secret.
        create_pod(api, namespace, "checkout-1", {"app": "checkout"})
        wait_running(api, namespace, "app=checkout", 1, wait_for)
        session = yaml.safe_load((REPO_ROOT / "examples" / "session-on-alert.yaml").read_text())
        session["spec"]["profiles"] = [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}]
        create_session(api, namespace, session)
        wait_for(
            lambda: (
                get_session(api, namespace, "checkout-on-alert").get("status", {}).get("phase")
                == "Armed"
            ),
            30,
            "the alert session to be Armed",
        )
        code, reply = _post_alert(alerts, namespace, "checkout-1")
        assert (code, reply["result"]) == (200, "recorded 1, duplicates 0, unmatched 0, resolved 0")
        status = wait_captures(api, namespace, "checkout-on-alert", 1, wait_for)
        assert status["lastCapture"]["trigger"] == "alert"
        assert status["lastCapture"]["result"] == "Succeeded", status["lastCapture"]
        _assert_capture_files(artifacts, "checkout-1", {"cpu.pb.gz", "goroutine.pb.gz"})

        # Still alive after all that, and never refused by the chart's RBAC.
        assert pod.running()
        assert _get(liveness) == 200
        assert _get(f"http://127.0.0.1:{metrics}/metrics") == 200
        # Stopped as the kubelet stops it: SIGTERM, and it exits cleanly within the grace period.
        started = time.monotonic()
        assert pod.stop() == 0
        assert (
            time.monotonic() - started
            < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        )
        # A clean stop releases the Lease, so that a new pod need not wait out its duration.
        lease = leases.read_namespaced_lease(lease_name, release_namespace)
        assert not lease.spec.holder_identity, lease.spec
        log = pod.logs()
        assert not RBAC_DENIAL.findall(log), log
        assert "Not enough permissions" not in log, log
    finally:
        if pod is not None:
            print(pod.logs()[-20000:])  # pytest shows it when the test fails
            pod.remove()
        uninstall = ("uninstall", release, f"--namespace={release_namespace}")
        _helm(cluster, bin_dir, helm_home, *uninstall, check=False)
