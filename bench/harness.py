"""What the benchmarks share: a local control plane and the operator as a process, both from
the test kit (localcluster), and where results are kept."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import config  # type: ignore[import-untyped]
from localcluster import sessions
from localcluster.controlplane import ControlPlane, build_binaries
from localcluster.operator_process import OperatorProcess
from localcluster.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


@contextmanager
def control_plane(workdir: Path) -> Iterator[tuple[ControlPlane, Any]]:
    plane = ControlPlane(workdir / "cluster", build_binaries(), crds=(REPO / "crds",))
    try:
        plane.start()
        plane.start_metrics_backend()
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        yield plane, api
    finally:
        plane.stop()


@contextmanager
def operator(
    plane: ControlPlane, workdir: Path, namespaces: list[str], env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        plane.kubeconfig, workdir / "artifacts", workdir / "operator.log", namespaces
    )
    process.env.update(env or {})
    process.start()
    try:
        yield process
    finally:
        process.stop()


def create_namespace(api: Any, name: str) -> None:
    sessions.create_namespace(api, name, wait)


def wait(predicate: Any, timeout: float, what: str, every: float = 0.05) -> Any:
    """The kit's wait_for, polling more often: the benchmarks time what they wait for."""
    return wait_for(predicate, timeout, what, every=every)


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
