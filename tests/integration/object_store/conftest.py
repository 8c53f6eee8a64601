"""Object store tests: the stores themselves (MinIO, fake-gcs-server, Azurite) and their
fixtures come from the test kit (localcluster.object_stores and its pytest plugin); here are a
prefix per test and captures laid out in a spool as the volume store leaves them."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import pytest

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.planner import capture_id

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
"""The uploader's clock in these tests: captures are dated hours before it."""


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A prefix of the bucket that belongs to this test alone."""
    return f"tests/{request.node.name.replace('[', '-').replace(']', '')}"


def capture_key(pod: str = "web-1", hours_ago: float = 1, session: str = "checkout") -> ArtifactKey:
    """A threshold capture of pod in shop/session, taken hours_ago before NOW."""
    moment = NOW - datetime.timedelta(hours=hours_ago)
    return ArtifactKey("shop", session, pod, capture_id(moment, "threshold"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """A file of `size` random bytes, written 1 MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 1 << 20)
            handle.write(os.urandom(n))
            left -= n
    return path


def make_capture(
    spool: Path,
    key: ArtifactKey,
    profiles: dict[str, int],
) -> dict[str, str]:
    """A complete capture in the spool, as the volume store leaves it; returns sha256 by file.

    Profiles are random bytes of the given sizes; metadata.json lists them and is written last.
    """
    directory = spool.joinpath(*key.parts)
    hashes: dict[str, str] = {}
    for name, size in profiles.items():
        hashes[name] = sha256_of(write_random(directory / name, size))
    metadata = {
        "captureId": key.capture_id,
        "namespace": key.namespace,
        "session": key.session,
        "pod": key.pod,
        "profiles": [
            {"file": name, "bytes": profiles[name], "sha256": hashes[name]} for name in profiles
        ],
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    hashes[METADATA_FILE] = sha256_of(directory / METADATA_FILE)
    return hashes
