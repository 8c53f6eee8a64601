"""What the benchmarks share: a local control plane, the operator as a process, and results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools" / "cluster" / "py")]

from kubernetes import client, config  # type: ignore[import-untyped]  # noqa: E402
from localcluster.controlplane import ControlPlane, build_binaries  # noqa: E402
from localcluster.processes import free_port, spawn, stop_group  # noqa: E402

RESULTS = REPO / "bench" / "results"


@contextmanager
def control_plane(workdir: Path) -> Iterator[tuple[ControlPlane, Any]]:
    plane = ControlPlane(workdir / "cluster", build_binaries())
    try:
        plane.start()
        plane.start_metrics_backend()
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        install_crd(plane)
        yield plane, api
    finally:
        plane.stop()


def install_crd(plane: ControlPlane) -> None:
    kubectl = [str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "-f", str(REPO / "crds")], check=True, capture_output=True)
    wait(
        lambda: (
            "True"
            in subprocess.run(
                [
                    *kubectl,
                    "get",
                    "crd/profilingsessions.spikeprof.io",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                ],
                capture_output=True,
                text=True,
            ).stdout
        ),
        60,
        "the CRD",
    )


@contextmanager
def operator(
    plane: ControlPlane, workdir: Path, namespaces: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    settings = dict(
        os.environ,
        KUBECONFIG=str(plane.kubeconfig),
        SPIKEPROF_ARTIFACT_ROOT=str(workdir / "artifacts"),
        SPIKEPROF_METRICS_PORT=str(free_port()),
        SPIKEPROF_METRICS_ADDRESS="127.0.0.1",
        SPIKEPROF_POLL_SECONDS="0.5",
        SPIKEPROF_ALERTS_PORT=str(free_port()),
        SPIKEPROF_ALERTS_ADDRESS="127.0.0.1",
        **(env or {}),
    )
    args = [sys.executable, "-m", "spikeprof.cli", "run", "--liveness="]
    for namespace in namespaces:
        args += ["-n", namespace]
    process = spawn(args, workdir / "operator.log", env=settings)
    try:
        yield process
    finally:
        stop_group(process.pid)


def create_namespace(api: Any, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})

    def has_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except client.ApiException:
            return False
        return True

    wait(has_sa, 30, f"namespace {name}")


def wait(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"benchmark failed: timed out after {timeout:.0f}s waiting for {what}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def save(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
