"""Child processes of the harness: started in their own process group, stopped without leftovers."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A child must not outlive a harness killed with SIGKILL: ask the kernel to kill it too.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn(
    args: list[str],
    log_path: Path,
    *,
    tie_to_parent: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child with its output in log_path, in a new process group of its own."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent if tie_to_parent else None,
        env=env,
    )


def running_in_group(pgid: int) -> list[int]:
    """The processes of the group that still run: zombies have exited already. Orphans of the
    group (a fork server's workers, say) are reaped by PID 1, which here does it only every second
    or two; waiting for that made every operator's stop ~2 s longer."""
    running = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()  # the name may be cut mid-character
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ... num_threads (20th) ...": comm may hold ") ".
        fields = stat[stat.rindex(b")") + 2 :].split()
        state, pgrp, threads = fields[0], int(fields[2]), int(fields[17])
        # A leader that ended its main thread only is "Z" while its other threads run.
        if pgrp == pgid and (state not in (b"Z", b"X") or threads > 1):
            running.append(int(entry.name))
    return running


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever still runs after timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not running_in_group(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # exited: reaped here if it is ours
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class PidFile:
    """Records the process groups a detached control plane runs, so `down` can stop them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        return {k: int(v) for k, v in json.loads(self.path.read_text()).items()}

    def add(self, name: str, pid: int) -> None:
        pids = self.read()
        pids[name] = pid
        self.path.write_text(json.dumps(pids))

    def stop_all(self) -> None:
        # Reverse start order: the stand-in and controllers go before the API server and etcd.
        for _name, pid in reversed(list(self.read().items())):
            stop_group(pid)
        self.path.unlink(missing_ok=True)
