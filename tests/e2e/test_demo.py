"""`make demo`, the README's first command: the operator, as the chart's ServiceAccount, catches a
real CPU spike through a threshold and shows what was hot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_demo_captures_the_spiking_pod_and_prints_its_hottest_functions() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "demo" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Starting the spikeprof operator as that ServiceAccount" in out
    assert "checkout-spike   Armed   3/3       1          0" in out
    assert "Succeeded, 2 profile(s) from 1 pod(s)" in out
    assert "cpu-hot: cpu " in out and "above 300m (60% of limit 500m) for 3s" in out
    assert "spiking code: main.burnCPU (" in out
    assert "flame graph: " in out and "cpu.flamegraph.html" in out
