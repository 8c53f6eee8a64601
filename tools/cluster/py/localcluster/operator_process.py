"""The spikeprof operator as a real process: the one harness that tests, benchmarks and the
demo start it with, each with its own settings, artifact root and log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.processes import free_port, spawn, stop_group


def loopback_settings() -> dict[str, str]:
    """What tests and benchmarks run the operator with: metrics and the alert receiver on free
    loopback ports, and pods polled every 0.5 s so that waits stay short."""
    return {
        "SPIKEPROF_METRICS_PORT": str(free_port()),
        "SPIKEPROF_METRICS_ADDRESS": "127.0.0.1",
        "SPIKEPROF_POLL_SECONDS": "0.5",
        "SPIKEPROF_ALERTS_PORT": str(free_port()),
        "SPIKEPROF_ALERTS_ADDRESS": "127.0.0.1",
    }


@dataclass
class OperatorProcess:
    """`spikeprof run` as a child process in a process group of its own, its output in `log_path`.

    The child sees this process's environment, then KUBECONFIG and SPIKEPROF_ARTIFACT_ROOT, then
    `settings`, then `env`; names in `unset_env` are removed last.
    """

    kubeconfig: Path
    artifact_root: Path
    log_path: Path
    namespaces: list[str]
    """Empty: cluster-wide."""
    settings: dict[str, str] = field(default_factory=loopback_settings)
    env: dict[str, str] = field(default_factory=dict)
    """Extra settings a test adds before start, e.g. SPIKEPROF_PROMETHEUS_URL."""
    unset_env: set[str] = field(default_factory=set)
    """Variables the operator must not see, e.g. KUBECONFIG."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_port(self) -> int:
        return int(self.settings["SPIKEPROF_METRICS_PORT"])

    @property
    def alerts_port(self) -> int:
        return int(self.settings["SPIKEPROF_ALERTS_PORT"])

    def environment(self) -> dict[str, str]:
        # The harness's own settings never leak in; KUBECONFIG alone says who the operator is.
        env = {k: v for k, v in os.environ.items() if k != "SPIKEPROF_KUBECONFIG"}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            SPIKEPROF_ARTIFACT_ROOT=str(self.artifact_root),
        )
        env.update(self.settings)
        env.update(self.env)
        for name in self.unset_env:
            env.pop(name, None)
        return env

    def start(self) -> subprocess.Popen[bytes]:
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
            env=self.environment(),
        )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None, "the operator was not started"
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies or the OOM killer strikes."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets and state but runs no code (a frozen VM, a
        long GC pause, a node under memory pressure), until `resume`."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def readyz(self) -> int | None:
        """The alert receiver's /readyz answer (200 or 503), or None when nothing answers."""
        url = f"http://127.0.0.1:{self.alerts_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def stop(self) -> None:
        if self.process is not None:
            # A paused process would not see SIGTERM until it runs again.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
            stop_group(self.process.pid)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
