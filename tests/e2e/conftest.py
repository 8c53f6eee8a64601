"""End-to-end fixtures: one real control plane per test session, a fresh namespace per test,
and the operator running as a real process against it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.processes import free_port, spawn, stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]

CRD = REPO_ROOT / "crds" / "spikeprof.io_profilingsessions.yaml"


@pytest.fixture(scope="session")
def cluster(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), bin_dir)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(cluster: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def kubectl(
    cluster: ControlPlane, bin_dir: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def crd_installed(kubectl: Callable[..., Any]) -> None:
    kubectl("apply", "-f", str(CRD))
    # `kubectl wait` fails outright while the CRD has no conditions yet, so poll instead.
    _wait_for(
        lambda: (
            "True"
            in kubectl(
                "get",
                "crd/profilingsessions.spikeprof.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,  # jsonpath fails while there are no conditions at all yet
            ).stdout
        ),
        60,
        "the CRD to be established",
    )


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    _wait_for(lambda: _has_default_sa(core, name), 30, f"ServiceAccount default in {name}")
    yield name
    with contextlib.suppress(Exception):
        core.delete_namespace(name)


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except client.ApiException:
        return False
    return True


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    return _wait_for


class Operator:
    """The operator as a real process, with its own artifact root and metrics port."""

    def __init__(
        self, kubeconfig: Path, artifact_root: Path, log_path: Path, namespaces: list[str]
    ) -> None:
        self.kubeconfig = kubeconfig
        self.artifact_root = artifact_root
        self.log_path = log_path
        self.namespaces = namespaces  # empty: cluster-wide
        self.metrics_port = free_port()
        self.alerts_port = free_port()
        self.env: dict[str, str] = {}  # extra settings, e.g. SPIKEPROF_PROMETHEUS_URL
        self.unset_env: set[str] = set()  # variables the operator must not see, e.g. KUBECONFIG
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The harness's own settings never leak in; KUBECONFIG alone says who the operator is.
        env = {k: v for k, v in os.environ.items() if k != "SPIKEPROF_KUBECONFIG"}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            SPIKEPROF_ARTIFACT_ROOT=str(self.artifact_root),
            SPIKEPROF_METRICS_PORT=str(self.metrics_port),
            SPIKEPROF_METRICS_ADDRESS="127.0.0.1",
            SPIKEPROF_POLL_SECONDS="0.5",
            SPIKEPROF_ALERTS_PORT=str(self.alerts_port),
            SPIKEPROF_ALERTS_ADDRESS="127.0.0.1",
        )
        env.update(self.env)
        for name in self.unset_env:
            env.pop(name, None)
        self.process = spawn(
            [
                sys.executable,
                "-m",
                "spikeprof.cli",
                "run",
                "--liveness=",
                *(f"--namespace={namespace}" for namespace in self.namespaces),
            ],
            self.log_path,
            env=env,
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies or the OOM killer strikes."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def operator_process(
    cluster: ControlPlane, crd_installed: None, namespace: str, tmp_path: Path
) -> Iterator[Operator]:
    """The operator, not started yet: for tests that set its environment first."""
    op = Operator(
        cluster.kubeconfig, tmp_path / "artifacts", tmp_path / "operator.log", [namespace]
    )
    yield op
    op.stop()


@pytest.fixture
def operator(operator_process: Operator) -> Operator:
    operator_process.start()
    return operator_process


@pytest.fixture(scope="session")
def metrics_api(cluster: ControlPlane) -> ControlPlane:
    """metrics.k8s.io served through the aggregation layer by the metrics-server stand-in."""
    cluster.start_metrics_backend()
    return cluster


def load_example(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "examples" / name).read_text())


@pytest.fixture
def kubectl_port_forward(
    cluster: ControlPlane, bin_dir: Path, tmp_path: Path
) -> Iterator[Callable[[str, str, int], int]]:
    """Runs `kubectl port-forward` to a pod's port; returns the local port once it forwards."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(namespace: str, pod: str, port: int) -> int:
        local = free_port()
        log = tmp_path / f"port-forward-{pod}.log"
        processes.append(
            spawn(
                [
                    str(bin_dir / "kubectl"),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "-n",
                    namespace,
                    "port-forward",
                    "--address=127.0.0.1",
                    f"pod/{pod}",
                    f"{local}:{port}",
                ],
                log,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and processes[-1].poll() is None:
            if f"Forwarding from 127.0.0.1:{local}".encode() in log.read_bytes():
                return local
            time.sleep(0.1)
        raise AssertionError(f"kubectl port-forward did not start:\n{log.read_text()}")

    yield start
    for proc in processes:
        stop_group(proc.pid)
