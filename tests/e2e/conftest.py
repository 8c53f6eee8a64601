"""End-to-end specifics: the kit's cluster (localcluster's pytest plugin gives the control plane,
a namespace per test, kubectl and the operator as a process) comes with spikeprof's CRD."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

CRD = REPO_ROOT / "crds" / "spikeprof.io_profilingsessions.yaml"


@pytest.fixture(scope="session")
def cluster_crds() -> tuple[Path, ...]:
    return (CRD,)
