"""The test kit's pytest fixtures, loaded through the `pytest11` entry point.

One real control plane per test session (with the CRDs a project's `cluster_crds` fixture
names), a fresh namespace per test, kubectl, the operator as a process, `kubectl port-forward`,
and the object stores (MinIO, fake-gcs-server, Azurite). Missing programs are built or
installed; one that cannot be fails the test, it never skips it.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from localcluster.controlplane import ControlPlane
    from localcluster.object_stores import AzuriteServer, MinioServer, StoreServer
    from localcluster.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Builds (or reuses) the Go binaries; a failed build fails the tests, it never skips them."""
    from localcluster.controlplane import build_binaries

    return build_binaries()


@pytest.fixture(scope="session")
def cluster_crds() -> tuple[Path, ...]:
    """The CRDs `cluster` installs: none here; a project's conftest.py names its own."""
    return ()


@pytest.fixture(scope="session")
def cluster(
    bin_dir: Path, cluster_crds: tuple[Path, ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    from localcluster.controlplane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), bin_dir, crds=cluster_crds)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(cluster: ControlPlane) -> Any:
    """A client (kubernetes.client.ApiClient) with the cluster's admin credentials."""
    from kubernetes import config  # type: ignore[import-untyped]

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


@pytest.fixture
def namespace(api: Any, wait_for: Callable[..., Any]) -> Iterator[str]:
    """A namespace of this test's own, once its ServiceAccount `default` exists."""
    from localcluster.sessions import create_namespace

    name = f"t-{uuid.uuid4().hex[:8]}"
    create_namespace(api, name, wait_for, timeout=30)
    yield name
    from kubernetes import client

    with contextlib.suppress(Exception):  # clean-up only: a test's failure says more
        client.CoreV1Api(api).delete_namespace(name)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    from localcluster.waiting import wait_for

    return wait_for


@pytest.fixture
def operator_process(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator watching this test's namespace, not started yet: for tests that set its
    environment first."""
    from localcluster.operator_process import OperatorProcess

    operator = OperatorProcess(
        cluster.kubeconfig, tmp_path / "artifacts", tmp_path / "operator.log", [namespace]
    )
    yield operator
    operator.stop()


@pytest.fixture
def operator(operator_process: OperatorProcess) -> OperatorProcess:
    operator_process.start()
    return operator_process


@pytest.fixture(scope="session")
def metrics_api(cluster: ControlPlane) -> ControlPlane:
    """metrics.k8s.io served through the aggregation layer by the metrics-server stand-in."""
    cluster.start_metrics_backend()
    return cluster


@pytest.fixture
def kubectl_port_forward(
    cluster: ControlPlane, bin_dir: Path, tmp_path: Path
) -> Iterator[Callable[[str, str, int], int]]:
    """Runs `kubectl port-forward` to a pod's port; returns the local port once it forwards."""
    import time

    from localcluster.processes import free_port, spawn, stop_group

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


# --- object stores ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def store_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], StoreServer]]:
    """Start a store of its own by scheme ("s3": MinIO, "gs": fake-gcs-server, "az": Azurite),
    for a test that stops it; all are stopped at the end of the session."""
    from localcluster.object_stores import SERVERS, build_server_binary
    from localcluster.processes import free_port

    binaries: dict[str, Path] = {}
    started: list[StoreServer] = []

    def start(scheme: str) -> StoreServer:
        if scheme not in binaries:
            binaries[scheme] = build_server_binary(scheme)
        kind = SERVERS[scheme]
        server = kind(binaries[scheme], tmp_path_factory.mktemp(kind.name), free_port())
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def shared_store_servers(
    store_server_factory: Callable[[str], StoreServer],
) -> Callable[[str], StoreServer]:
    """One store of each kind, started when first asked for, shared by tests that do not stop
    it; each test writes under a prefix of its own."""
    started: dict[str, StoreServer] = {}

    def get(scheme: str) -> StoreServer:
        if scheme not in started:
            started[scheme] = store_server_factory(scheme)
        return started[scheme]

    return get


@pytest.fixture(params=["s3", "gs", "az"])
def store_server(
    request: pytest.FixtureRequest, shared_store_servers: Callable[[str], StoreServer]
) -> StoreServer:
    """MinIO, fake-gcs-server, then Azurite: each test that takes it runs against all three."""
    return shared_store_servers(str(request.param))


@pytest.fixture
def minio(shared_store_servers: Callable[[str], StoreServer]) -> MinioServer:
    from localcluster.object_stores import MinioServer

    server = shared_store_servers("s3")
    assert isinstance(server, MinioServer)
    return server


@pytest.fixture
def fake_gcs(shared_store_servers: Callable[[str], StoreServer]) -> StoreServer:
    return shared_store_servers("gs")


@pytest.fixture
def azurite(shared_store_servers: Callable[[str], StoreServer]) -> AzuriteServer:
    from localcluster.object_stores import AzuriteServer

    server = shared_store_servers("az")
    assert isinstance(server, AzuriteServer)
    return server
