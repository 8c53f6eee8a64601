"""The artifact volume: each pod's artifacts of a capture appear at once, complete, or not at all.

Profiles are streamed into a hidden staging directory next to their final place
(`.<capture id>.<attempt>.partial/`), each written to a temporary name and renamed when checked.
When every profile of the pod is in, metadata.json is written and fsynced, and the staging
directory is renamed to `<capture id>/` in one step. A reader never sees a partial file; a
capture interrupted by a crash leaves only a hidden staging directory, which the next attempt
removes.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE

STAGING_SUFFIX = ".partial"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedCapture:
    """One pod's capture being written; `commit` publishes it, `discard` removes it."""

    def __init__(self, staging: Path, final: Path) -> None:
        self.staging = staging
        self.final = final

    def temp_path(self, file_name: str) -> Path:
        return self.staging / f".{file_name}.tmp"

    def keep(self, file_name: str) -> None:
        """Promote a checked temporary file to its final name inside the staging directory."""
        temp = self.temp_path(file_name)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.rename(self.staging / file_name)

    def drop(self, file_name: str) -> None:
        self.temp_path(file_name).unlink(missing_ok=True)

    def write_text(self, file_name: str, text: str) -> None:
        """Add a text file (a page made from a kept profile), in UTF-8, whole or not at all."""
        try:
            self.temp_path(file_name).write_text(text, encoding="utf-8")
            self.keep(file_name)
        except OSError:
            self.drop(file_name)
            raise

    def commit(self, metadata: dict[str, Any]) -> None:
        path = self.staging / METADATA_FILE
        temp = self.temp_path(METADATA_FILE)
        with temp.open("w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        temp.rename(path)
        _fsync_dir(self.staging)
        self.staging.rename(self.final)
        _fsync_dir(self.final.parent)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


class VolumeStore:
    """Artifacts under one root directory: <root>/<namespace>/<session>/<pod>/<capture id>/."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def final_path(self, key: ArtifactKey) -> Path:
        return self.root.joinpath(*key.parts)

    def is_complete(self, key: ArtifactKey) -> bool:
        return (self.final_path(key) / METADATA_FILE).is_file()

    def read_metadata(self, key: ArtifactKey) -> dict[str, Any]:
        """The metadata.json of a complete capture."""
        data: dict[str, Any] = json.loads((self.final_path(key) / METADATA_FILE).read_text())
        return data

    def published_file(self, key: ArtifactKey, file_name: str) -> Path | None:
        """The path of one file of a published capture, or None when there is no such file."""
        path = self.final_path(key) / file_name
        return path if path.is_file() else None

    def published(self, namespace: str, session: str) -> list[ArtifactKey]:
        """The session's complete pod captures (those with metadata.json), in no order."""
        found = []
        for metadata in self.root.joinpath(namespace, session).glob(f"*/*/{METADATA_FILE}"):
            capture = metadata.parent
            if not capture.name.startswith("."):
                found.append(ArtifactKey(namespace, session, capture.parent.name, capture.name))
        return found

    def delete(self, key: ArtifactKey) -> None:
        """Remove one pod's capture; metadata.json first, so it never looks complete half-gone."""
        final = self.final_path(key)
        (final / METADATA_FILE).unlink(missing_ok=True)
        shutil.rmtree(final, ignore_errors=True)

    def stage_unless_complete(self, key: ArtifactKey) -> StagedCapture | None:
        """A staging directory for the pod's capture; None when it is already published."""
        return None if self.is_complete(key) else self.stage(key)

    def discard_staging(self, namespace: str, session: str) -> list[Path]:
        """Remove every staging directory of the session's pods (returned): called before this
        replica captures there, when any left is an attempt that can never be published (its
        process died, or lost the namespace, before the capture's start was in status)."""
        found = list(self.root.joinpath(namespace, session).glob(f"*/.*{STAGING_SUFFIX}"))
        for staging in found:
            shutil.rmtree(staging, ignore_errors=True)
        return found

    def stage(self, key: ArtifactKey) -> StagedCapture:
        final = self.final_path(key)
        # Left over from an attempt that died mid-capture: start it again from nothing.
        if final.parent.is_dir():
            for stale in final.parent.glob(f".{glob.escape(final.name)}*{STAGING_SUFFIX}"):
                shutil.rmtree(stale, ignore_errors=True)
        # A name of this attempt's own: a replica paused mid-capture (SIGSTOP) that wakes after
        # another took the capture over discards only its own directory, never the other's.
        staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}{STAGING_SUFFIX}")
        staging.mkdir(parents=True)
        return StagedCapture(staging, final)
