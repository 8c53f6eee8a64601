"""Real peers started by the tests: Debian's Prometheus (and, later, Alertmanager)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localcluster.processes import free_port, spawn, stop_group


def require_binary(name: str) -> str:
    """The path of a Debian-packaged peer; a missing one fails the test, it never skips it."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed: `make test` installs it (tools/setup/system-packages.sh)"
        )
    return path


class Prometheus:
    """A real Prometheus scraping pods with namespace and pod labels.

    Debian's build leaves out kubernetes_sd_configs, so targets come from a file_sd file that
    `set_targets` writes from the pods the test created (Prometheus re-reads it on change).
    """

    def __init__(self, workdir: Path, namespace: str, port: int = 7777) -> None:
        self.workdir = workdir
        self.namespace = namespace
        self.target_port = port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets_file = workdir / "targets.json"
        self.config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "pods",
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        self.process: subprocess.Popen[bytes] | None = None

    def set_targets(self, pods: dict[str, str]) -> None:
        """pod name -> pod IP; each scraped on the target port with namespace and pod labels."""
        groups = [
            {
                "targets": [f"{ip}:{self.target_port}"],
                "labels": {"namespace": self.namespace, "pod": name},
            }
            for name, ip in sorted(pods.items())
        ]
        temp = self.targets_file.with_suffix(".tmp")
        temp.write_text(json.dumps(groups))
        temp.rename(self.targets_file)

    def start(self, rule_files: list[Path] | None = None, alertmanager: str | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if rule_files:
            self.config["rule_files"] = [str(f) for f in rule_files]
        if alertmanager:
            host = alertmanager.removeprefix("http://")
            self.config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
        if not self.targets_file.exists():
            self.set_targets({})
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.process = spawn(
            [
                require_binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            self.workdir / "prometheus.log",
        )
        _wait_ready(f"{self.url}/-/ready", self.workdir / "prometheus.log")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process = None


class Alertmanager:
    """A real Alertmanager (Debian's prometheus-alertmanager), clustering off."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.process = spawn(
            [
                require_binary("prometheus-alertmanager"),
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            self.workdir / "alertmanager.log",
        )
        _wait_ready(f"{self.url}/-/ready", self.workdir / "alertmanager.log")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process = None


def _wait_ready(url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not become ready; see {log}")
