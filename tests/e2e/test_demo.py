"""`make demo`, the README's first command, catches a real spike and shows what was hot."""

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
    assert "checkout-spike   Armed   3/3       1          0" in out
    assert "Succeeded, 6 profile(s) from 3 pod(s)" in out
    assert "Type: cpu" in out
    assert "main.burnCPU" in out
    assert "cpu.pb.gz" in out and "metadata.json" in out
