"""Real profiles for the pprof tests, and `go tool pprof` to check our reading of them.

pprof-target is run on a loopback port and made to burn a core, hold 64 MiB and park 500
goroutines while its profiles are taken, as the operator would take them. pprof-synth writes profiles through github.com/google/pprof with what the runtime's
rarely have: deep random stacks, recursion, many inlined frames and unsymbolized libraries.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from localcluster.processes import free_port, spawn, stop_group

from tests import pprof_top

REPO_ROOT = Path(__file__).resolve().parents[3]
TARGET_PROFILES = ("cpu", "heap", "allocs", "goroutine", "threadcreate", "block")


def _get(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def _wait_until_serving(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"pprof-target exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            _get(f"{base}/healthz", timeout=1)
            return
        except OSError:
            # Not listening yet: the process has just been started.
            if time.monotonic() > deadline:
                raise AssertionError(f"pprof-target did not serve {base} within 15 s") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def target_profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Profiles of a busy pprof-target, as net/http/pprof serves them (block has no samples)."""
    subprocess.run([str(REPO_ROOT / "tools" / "cluster" / "build.sh"), "pprof-target"], check=True)
    out = tmp_path_factory.mktemp("target-profiles")
    base = f"http://127.0.0.1:{free_port()}"
    log = out / "pprof-target.log"
    process = spawn(
        [str(REPO_ROOT / ".cluster" / "bin" / "pprof-target"), f"-listen={base[len('http://') :]}"],
        log,
    )
    try:
        _wait_until_serving(base, process, log)
        _get(f"{base}/control/alloc?mb=64")
        _get(f"{base}/control/goroutines?n=500")
        _get(f"{base}/control/burn?cores=1&seconds=10")
        paths = {name: out / f"{name}.pb.gz" for name in TARGET_PROFILES}
        paths["cpu"].write_bytes(_get(f"{base}/debug/pprof/profile?seconds=2"))
        _get(f"{base}/control/burn?cores=0")  # the core is not needed any more: give it back
        paths["heap"].write_bytes(_get(f"{base}/debug/pprof/heap?gc=1"))
        paths["allocs"].write_bytes(_get(f"{base}/debug/pprof/allocs"))
        paths["goroutine"].write_bytes(_get(f"{base}/debug/pprof/goroutine"))
        paths["threadcreate"].write_bytes(_get(f"{base}/debug/pprof/threadcreate"))
        paths["block"].write_bytes(_get(f"{base}/debug/pprof/block"))  # empty: rate 0
        yield paths
    finally:
        stop_group(process.pid)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def synth_profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic cpu and heap profiles with 4000 distinct stacks each, from tools/pprof-synth."""
    out = tmp_path_factory.mktemp("synth-profiles")
    binary = out / "pprof-synth"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=REPO_ROOT / "tools" / "pprof-synth",
        check=True,
        timeout=600,
    )
    paths = {}
    for kind in ("cpu", "heap"):
        paths[f"synth-{kind}"] = out / f"synth-{kind}.pb.gz"
        subprocess.run(
            [
                str(binary),
                f"-kind={kind}",
                "-samples=4000",
                "-functions=400",
                f"-out={paths[f'synth-{kind}']}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return paths


@pytest.fixture(scope="session")
def go_tool_pprof() -> Callable[..., str]:
    """Runs `go tool pprof` with the arguments given and returns what it prints."""
    return pprof_top.go_tool_pprof
