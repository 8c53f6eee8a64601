"""One stand-in container's life as the kernel and the kubelet shape it.

Memory limits: the kubelet gives each container a memory cgroup whose limit is
`resources.limits.memory`, and the kernel's OOM killer SIGKILLs the container when it passes
it. This machine mounts cgroups in hybrid mode (the unified hierarchy has no memory controller,
only v1's does, and its only writable part is the per-job cgroups of the sandbox that runs these
sessions), so the stand-in enforces the limit from outside: it reads each container process's
resident set size every POLL_SECONDS and SIGKILLs the container's process group past the
limit. A leak of 20 MiB/s is thus killed within ~2 MiB of its limit.

What the status then says follows the real components:
- containerd names the exit: `OOMKilled` when the OOM killer ended it, else `Error` for a
  non-zero code and `Completed` for 0 (internal/cri/server/helpers.go: oomExitReason,
  errorExitReason, completeExitReason); a signal's exit code is 128 + its number (137: SIGKILL).
- the kubelet writes the exited container as `state.terminated` (kubelet_pods.go,
  convertToAPIContainerStatuses: case ContainerStateExited), creates the next one with
  `restartCount` + 1 (kuberuntime_container.go, startContainer: "restartCount =
  containerStatus.RestartCount + 1"), and reports the previous container as `lastState`
  (kubelet_pods.go: `statuses[cName].LastTerminationState = status.State`).
- it restarts after the crash-loop back-off of kuberuntime_manager.go's doBackOff, kept by
  client-go's flowcontrol.Backoff with the kubelet's defaults (kubelet.go:
  initialCrashLoopBackOff 10s, MaxContainerBackOff 300s): the first restart is immediate; one
  within the back-off of the last waits in `waiting: CrashLoopBackOff`, the back-off doubling.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity  # type: ignore[import-untyped]

from localcluster.processes import spawn

POLL_SECONDS = 0.1
"""How often the stand-in reads each container's RSS: a 20 MiB/s leak overshoots by <= 2 MiB."""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
INITIAL_BACKOFF = 10.0
"""kubelet.go initialCrashLoopBackOff, seconds."""
MAX_BACKOFF = 300.0
"""kubelet.go MaxCrashLoopBackOff (v1beta1.MaxContainerBackOff), seconds."""

OOM_KILLED = "OOMKilled"
ERROR = "Error"
COMPLETED = "Completed"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def memory_limit_bytes(container: Any) -> int | None:
    """The container's `resources.limits.memory` in bytes, None without one."""
    limits = (container.resources.limits if container.resources else None) or {}
    if "memory" not in limits:
        return None
    return int(parse_quantity(limits["memory"]))


def rss_bytes(pid: int) -> int | None:
    """Resident set size of pid, as the memory cgroup would charge it; None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def go_duration(seconds: float) -> str:
    """Seconds as Go's time.Duration prints them (10s, 1m20s, 5m0s), as in kubelet messages."""
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class CrashLoopBackOff:
    """client-go flowcontrol.Backoff for one container's key; the kubelet's has no jitter."""

    def __init__(self, initial: float = INITIAL_BACKOFF, maximum: float = MAX_BACKOFF) -> None:
        self.initial = initial
        self.maximum = maximum
        self.backoff: float | None = None
        self.last_update = 0.0

    def _expired(self, event: float) -> bool:
        # hasExpired: stable once it ran fine for twice the maximum since the last back-off.
        return event - self.last_update > 2 * self.maximum

    def remaining(self, finished: float, at: float) -> float:
        """IsInBackOffSince(finishedAt): seconds still to wait before a restart, 0 for none."""
        if self.backoff is None or self._expired(finished):
            return 0.0
        return max(0.0, self.backoff - (at - finished))

    def next(self, finished: float, at: float) -> None:
        """Next(key, finishedAt), called as the container is started again."""
        if self.backoff is None or self._expired(finished):
            self.backoff = self.initial
        else:
            self.backoff = min(2 * self.backoff, self.maximum)
        self.last_update = at


@dataclass(frozen=True)
class Termination:
    """How one container instance ended: what containerd's CRI status reports of it."""

    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str

    def as_state(self) -> dict[str, Any]:
        return {
            "terminated": {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
                "containerID": self.container_id,
            }
        }


def termination_of(returncode: int, oom_killed: bool) -> tuple[int, str]:
    """Exit code and reason as containerd reports them (128 + signal for a killed process)."""
    code = 128 - returncode if returncode < 0 else returncode
    if oom_killed:
        return code, OOM_KILLED
    return code, (COMPLETED if code == 0 else ERROR)


@dataclass
class Container:
    """One container of a stand-in pod: its process (None: a container the stand-in does not
    run, which stays reported as running) and what its status says."""

    pod_uid: str
    name: str
    image: str
    command: list[str] | None
    listens_on: list[str]
    log_path: Path | None
    memory_limit: int | None
    process: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    started_at: str = ""
    running: bool = False
    waiting: dict[str, str] | None = None
    terminated: Termination | None = None
    """The instance that just ended, before the kubelet starts the next one."""
    last_termination: Termination | None = None
    backoff: CrashLoopBackOff = field(default_factory=CrashLoopBackOff)
    finished_monotonic: float = 0.0

    @property
    def container_id(self) -> str:
        # A runtime gives each instance an ID of its own; the first keeps the stand-in's old form.
        suffix = f"/{self.restart_count}" if self.restart_count else ""
        return f"stand-in://{self.pod_uid}/{self.name}{suffix}"

    def start(self) -> None:
        """Start a new instance: the first, or the next after an exit (restartCount + 1)."""
        if self.terminated is not None:
            self.last_termination = self.terminated
            self.terminated = None
            self.restart_count += 1
        if self.command is not None and self.log_path is not None:
            self.process = spawn(self.command, self.log_path)
        self.started_at = now()
        self.running = True
        self.waiting = None

    def over_limit(self) -> int | None:
        """The RSS of a running process past its memory limit, None when within it."""
        if self.process is None or self.memory_limit is None:
            return None
        rss = rss_bytes(self.process.pid)
        return rss if rss is not None and rss > self.memory_limit else None

    def kill_for_memory(self) -> int:
        """SIGKILL the whole process group, as the OOM killer of a group-killing cgroup does."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def exited(self, returncode: int, oom_killed: bool) -> Termination:
        code, reason = termination_of(returncode, oom_killed)
        self.terminated = Termination(code, reason, self.started_at, now(), self.container_id)
        self.finished_monotonic = time.monotonic()
        self.process = None
        self.running = False
        return self.terminated

    def wait_in_backoff(self, pod_name: str, namespace: str, delay: float) -> None:
        # kuberuntime_manager.go doBackOff's message; format.Pod prints name_namespace(uid).
        assert self.terminated is not None
        self.last_termination = self.terminated
        self.waiting = {
            "reason": "CrashLoopBackOff",
            "message": (
                f"back-off {go_duration(self.backoff.backoff or delay)} restarting failed "
                f"container={self.name} pod={pod_name}_{namespace}({self.pod_uid})"
            ),
        }

    @property
    def ready(self) -> bool:
        return self.running

    def status(self) -> dict[str, Any]:
        """This container's entry of the pod's containerStatuses."""
        if self.running:
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.waiting is not None:
            state = {"waiting": dict(self.waiting)}
        else:
            assert self.terminated is not None
            state = self.terminated.as_state()
        last = self.last_termination
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "stand-in://pprof-target",
            "containerID": self.container_id,
            "ready": self.ready,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": last.as_state() if last is not None else {},
        }
