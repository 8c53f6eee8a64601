"""Shared test configuration: the repository root, and where the Go binaries are linked."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = REPO_ROOT / ".cluster" / "bin"


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Builds (or reuses) the Go binaries; a failed build fails the tests, it never skips them."""
    from localcluster.controlplane import build_binaries

    return build_binaries()
