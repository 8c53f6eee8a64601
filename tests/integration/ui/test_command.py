"""`spikeprof ui` as a person starts it: on 127.0.0.1 only unless told otherwise, and one
sentence, not a traceback, when it is told nothing about where the captures are."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from localcluster.processes import free_port, spawn, stop_group

from tests.integration.ui.conftest import SESSION


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"spikeprof ui exited:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"spikeprof ui did not listen on {port}:\n{log.read_text()}")


def test_the_command_serves_the_volume_on_loopback_only(volume: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    process = spawn(
        [sys.executable, "-m", "spikeprof.cli", "ui", "--root", str(volume), "--port", str(port)],
        log,
    )
    try:
        _wait_for_port(port, process, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
            assert SESSION in response.read().decode()
        # Another loopback address of this machine is not 127.0.0.1: nothing listens there.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.2", port)) != 0
        assert f"http://127.0.0.1:{port}/" in log.read_text()
    finally:
        stop_group(process.pid)
        process.wait(timeout=10)


def test_without_a_root_or_store_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SPIKEPROF_ARTIFACT_ROOT"}
    done = subprocess.run(
        [sys.executable, "-m", "spikeprof.cli", "ui"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("spikeprof: Say where the captures are"), done.stderr
    assert "Traceback" not in done.stderr
