"""What the benchmarks share: a local control plane and the operator as a process, both from
the test kit (localcluster), and where results are kept."""

from __future__ import annotations

import json
import os
import time
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
    """CPU seconds a process has used so far, all its threads (gone ones too), to the ns.

    Read from the process's CPU-time clock (clock_gettime on the clock id that
    clock_getcpuclockid(3) gives for the pid: ((~pid) << 3) | CPUCLOCK_SCHED), which is the
    scheduler's sum_exec_runtime of the whole thread group in nanoseconds. /proc/<pid>/stat's
    utime + stime count the same time in clock ticks (10 ms here), too coarse for a cycle of
    ~10 ms; /proc/<pid>/schedstat is the main thread's alone, and summing
    /proc/<pid>/task/*/schedstat misses the threads that have exited (kopf's executor
    threads, the client's DNS threads). Falls back to the ticks where the clock is refused."""
    try:
        return time.clock_gettime_ns(_process_cpu_clock(pid)) / 1e9
    # Not Linux, or a kernel that will not read another process's clock: ticks it is.
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu_clock(pid: int) -> int:
    """glibc's clock_getcpuclockid(pid), which Python does not expose (the kernel's
    MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) in include/linux/posix-timers.h)."""
    cpuclock_sched = 2
    return ((~pid) << 3) | cpuclock_sched


def descendants(pid: int) -> list[int]:
    """The processes under `pid` (the operator's analysis fork server and its workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread or the process ended meanwhile
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of the process and of the processes under it that are still running."""
    total = 0.0
    for each in (pid, *descendants(pid)):
        try:
            total += cpu_seconds(each)
        except OSError:  # ended meanwhile
            continue
    return total


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
