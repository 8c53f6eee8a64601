"""The UI's tests: real profiles of pprof-target laid out as the operator lays them out, the UI
served on a loopback port, and headless Chromium (Debian's `chromium`) looking at it.

Screenshots go to each test's tmp_path; with SPIKEPROF_UI_SCREENSHOTS=DIR they are also written
there (`SPIKEPROF_UI_SCREENSHOTS=docs/ui` regenerates the README's pictures).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from localcluster.processes import free_port, spawn, stop_group

from spikeprof.adapters.artifact_reader import ArtifactSource
from spikeprof.ui.server import UiServer, build_app
from tests.integration.pprof.conftest import REPO_ROOT, _get, _wait_until_serving
from tests.integration.pprof.devtools import Page
from tests.integration.test_captures_cli import _write_capture
from tests.unit.pprof_proto import ProfileBuilder, call_chain

NS, SESSION, POD, OTHER_POD = "shop", "checkout-spikes", "checkout-1", "checkout-2"
BASELINE_ID = "20261126T010000.000Z-immediate"
MIDDLE_ID = "20261126T010300.000Z-alert"
SPIKE_ID = "20261126T010457.951Z-threshold"
SPIKE_REASON = "cpu-hot: cpu 959m above 400m (80% of limit 500m) for 3s"
HOSTILE_SESSION = "hostile"
HOSTILE_POD = '<img src=x onerror="window.pwned=1">'
HOSTILE_TEXT = '</script><script>window.pwned = 2</script><img src=x onerror="window.pwned = 3">'
HOSTILE_ID = "20261126T020000.000Z-alert"


@dataclass(frozen=True)
class Profiles:
    calm: dict[str, bytes]
    spike: dict[str, bytes]


@pytest.fixture(scope="session")
def real_profiles() -> Profiles:
    """cpu and heap profiles of pprof-target idle, then burning a core."""
    subprocess.run([str(REPO_ROOT / "tools" / "cluster" / "build.sh"), "pprof-target"], check=True)
    base = f"http://127.0.0.1:{free_port()}"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"ui-pprof-target-{os.getpid()}.log"
    process = spawn(
        [str(REPO_ROOT / ".cluster" / "bin" / "pprof-target"), f"-listen={base[7:]}"], log
    )
    try:
        _wait_until_serving(base, process, log)
        calm = {
            "cpu": _get(f"{base}/debug/pprof/profile?seconds=1"),
            "heap": _get(f"{base}/debug/pprof/heap"),
        }
        _get(f"{base}/control/burn?cores=1&seconds=5")
        spike = {"cpu": _get(f"{base}/debug/pprof/profile?seconds=1")}
        _get(f"{base}/control/burn?cores=0")
        spike["heap"] = _get(f"{base}/debug/pprof/heap")
    finally:
        stop_group(process.pid)
        process.wait(timeout=10)
    return Profiles(calm, spike)


def hostile_profile() -> bytes:
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    call_chain(builder, ["main.main", HOSTILE_TEXT])
    builder.sample([2, 1], [5, 50_000_000])
    return builder.body()


def _add_baseline(capture: Path, baseline_id: str) -> None:
    # What the operator writes when it compared a capture with the session's baseline.
    metadata_path = capture / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    for entry in metadata["profiles"]:
        if entry.get("file", "").endswith(".pb.gz"):
            entry["versusBaseline"] = {"baseline": baseline_id}
    metadata_path.write_text(json.dumps(metadata))


def write_captures(root: Path, profiles: Profiles, *, hostile: bool) -> Path:
    """Three captures of one pod (baseline, alert, spike), the spike's sibling on another pod,
    and (hostile=True) a capture whose pod, reason and function names carry markup."""
    _write_capture(
        root,
        (NS, SESSION, POD, BASELINE_ID),
        profiles.calm,
        trigger="immediate",
        reason="the session was created",
        requested_at="2026-11-26T01:00:00Z",
    )
    _write_capture(
        root,
        (NS, SESSION, POD, MIDDLE_ID),
        profiles.calm,
        trigger="alert",
        reason="CheckoutHighLatency",
        requested_at="2026-11-26T01:03:00Z",
    )
    for pod in (POD, OTHER_POD):
        spike = _write_capture(
            root,
            (NS, SESSION, pod, SPIKE_ID),
            profiles.spike,
            trigger="threshold",
            reason=SPIKE_REASON,
            requested_at="2026-11-26T01:04:57Z",
        )
    _add_baseline(root / NS / SESSION / POD / SPIKE_ID, BASELINE_ID)
    _add_baseline(spike, BASELINE_ID)
    if hostile:
        _write_capture(
            root,
            (NS, HOSTILE_SESSION, HOSTILE_POD, HOSTILE_ID),
            {"cpu": hostile_profile()},
            trigger="alert",
            reason=HOSTILE_TEXT,
            requested_at="2026-11-26T02:00:00Z",
        )
    # What the operator leaves while writing: never a capture.
    (root / NS / SESSION / POD / f".{SPIKE_ID}x.partial").mkdir()
    return root


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory, real_profiles: Profiles) -> Path:
    return write_captures(tmp_path_factory.mktemp("artifacts"), real_profiles, hostile=True)


Serve = Callable[..., Awaitable[str]]
Screenshot = Callable[[str], Awaitable[bytes]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the UI over a source on a free loopback port; its base URL."""
    started: list[UiServer] = []

    async def start(source: ArtifactSource, **options: Any) -> str:
        server = UiServer(build_app(source, **options), address="127.0.0.1", port=0)
        await server.start()
        started.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
def screenshot(page: Page, tmp_path: Path) -> Screenshot:
    """Save what the page shows now, under tmp_path and SPIKEPROF_UI_SCREENSHOTS."""

    async def take(name: str) -> bytes:
        png = await page.screenshot(tmp_path / f"{name}.png")
        if extra := os.environ.get("SPIKEPROF_UI_SCREENSHOTS"):
            await asyncio.to_thread(Path(extra).mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread((Path(extra) / f"{name}.png").write_bytes, png)
        return png

    return take
