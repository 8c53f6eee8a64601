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


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
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
