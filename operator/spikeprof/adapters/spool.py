"""The spool's directory on local disk: which captures are complete, and the marks uploads leave.

The spool is laid out like the artifact volume (`<spool>/<ns>/<session>/<pod>/<capture id>/`,
written by the volume store), and a capture is complete once its metadata.json is there. Names
starting with a dot are never a capture's files: they are our marks (`.uploaded`,
`.upload-progress`) or the volume store's staging directories and temporary files.

Every function here blocks on the disk: the uploader runs them in a worker thread.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.planner import format_time

UPLOADED_MARKER = ".uploaded"
"""Written in a capture's spool directory once every file of it is in the store."""

PROGRESS_FILE = ".upload-progress"
"""One line per file of the capture already in the store, appended as each upload succeeds."""


@dataclass(frozen=True)
class SpooledCapture:
    """One pod's complete capture in the spool."""

    key: ArtifactKey
    path: Path
    files: tuple[str, ...]
    """Its files in upload order: metadata.json last."""
    bytes: int
    uploaded: bool
    """Its `.uploaded` marker is there: every file is in the store."""


def _is_visible(entry: os.DirEntry[str]) -> bool:
    # Hidden names are ours (markers) or the volume store's (staging dirs, temporary files).
    return not entry.name.startswith(".")


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _subdirectories(path: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            found = sorted((e for e in entries if _is_visible(e) and e.is_dir()), key=_name)
    except FileNotFoundError:
        # Removed while we looked (an uploaded capture being cleared): nothing there any more.
        return
    yield from found


def _read_capture(key: ArtifactKey, path: Path) -> SpooledCapture | None:
    files: dict[str, int] = {}
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if _is_visible(entry) and entry.is_file():
                    files[entry.name] = entry.stat().st_size
        uploaded = (path / UPLOADED_MARKER).exists()
    except FileNotFoundError:
        return None  # removed while we looked
    if METADATA_FILE not in files:
        return None  # not complete yet: the volume store publishes metadata.json last
    order = sorted(files, key=lambda name: (name == METADATA_FILE, name))
    return SpooledCapture(key, path, tuple(order), sum(files.values()), uploaded)


def complete_captures(
    spool: Path, only_session: tuple[str, str] | None = None
) -> list[SpooledCapture]:
    """Complete captures in the spool (of one (namespace, session) if given), oldest id first."""
    found: list[SpooledCapture] = []
    for ns in _subdirectories(spool):
        for session in _subdirectories(Path(ns.path)):
            if only_session not in (None, (ns.name, session.name)):
                continue
            for pod in _subdirectories(Path(session.path)):
                for capture in _subdirectories(Path(pod.path)):
                    key = ArtifactKey(ns.name, session.name, pod.name, capture.name)
                    spooled = _read_capture(key, Path(capture.path))
                    if spooled is not None:
                        found.append(spooled)
    found.sort(key=lambda c: (c.key.capture_id, c.key.parts))
    return found


def uploaded_files(capture: Path) -> set[str]:
    """The files of the capture its progress file lists as already in the store."""
    try:
        text = (capture / PROGRESS_FILE).read_text()
    except FileNotFoundError:
        return set()
    # A line cut short by a crash is not a file name we wrote; it cannot match one, so it is
    # harmless and the file is uploaded again.
    return {line for line in text.splitlines() if line}


def record_uploaded(capture: Path, file_name: str) -> None:
    """Append one uploaded file to the capture's progress, on disk before the next upload."""
    with (capture / PROGRESS_FILE).open("a") as handle:
        handle.write(file_name + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def mark_uploaded(capture: Path, url: str, uploaded_at: datetime.datetime) -> None:
    """Write the `.uploaded` marker (where to, when) in one rename: it is there whole or not."""
    temp = capture / f"{UPLOADED_MARKER}.tmp"
    with temp.open("w") as handle:
        json.dump({"uploadedTo": url, "uploadedAt": format_time(uploaded_at)}, handle)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    temp.rename(capture / UPLOADED_MARKER)


def remove(capture: Path) -> None:
    """Remove a capture's directory; one already gone (or going) is not an error."""
    shutil.rmtree(capture, ignore_errors=True)
