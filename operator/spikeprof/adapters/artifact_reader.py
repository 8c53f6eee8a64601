"""Reading captures back: from the artifact volume or from its mirror in an object store.

Both lay captures out as `<namespace>/<session>/<pod>/<capture id>/`, and a capture exists
once its metadata.json does (it is written last). Hidden names (`.<id>.partial/` staging
directories, `.uploaded` markers, temporary files) belong to the writer and are never listed.
Failures are raised as ArtifactReadError with a sentence saying what could not be read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spikeprof.adapters.object_store import ObjectStore, ObjectStoreError
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.catalog import Capture, CatalogError, capture_from_metadata
from spikeprof.errors import SpikeprofError
from spikeprof.pprof.profile import Profile, ProfileDecodeError, decode_file

COPY_CHUNK = 1024 * 1024
"""Bytes copied per step from the volume: progress moves often enough, memory stays small."""

METADATA_READS_IN_FLIGHT = 8
"""metadata.json files downloaded at once when listing a store: a listing of a few hundred
captures takes seconds, not minutes, without flooding the store."""

log = logging.getLogger("spikeprof.artifacts")

Progress = Callable[[int], None]
"""Called with the bytes just written, as a file is being fetched."""


class ArtifactReadError(SpikeprofError):
    """Captures could not be listed or read; the message says which and why."""


@dataclass
class Listing:
    """Captures found, and the ones that could not be read (one sentence each)."""

    captures: list[Capture] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class ArtifactSource(Protocol):
    """Where captures are read from."""

    @property
    def description(self) -> str: ...

    async def list_captures(self, prefix: tuple[str, ...] = ()) -> Listing:
        """Every complete capture under the leading path segments given."""
        ...

    async def fetch(self, capture: Capture, name: str, dest: Path, progress: Progress) -> int:
        """Copy one file of a capture to dest (appearing whole); return the bytes written."""
        ...


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _parse_metadata(key: ArtifactKey, text: str, files: Mapping[str, int]) -> Capture:
    try:
        metadata: Any = json.loads(text)
        return capture_from_metadata(key, metadata, files)
    except (ValueError, CatalogError) as error:
        # json.JSONDecodeError is a ValueError: a truncated or hand-edited file.
        raise ArtifactReadError(
            f"{key.relative_path}/{METADATA_FILE} cannot be read: {error}"
        ) from None


class VolumeArtifacts:
    """Captures in a directory laid out as the operator's artifact volume."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return str(self.root)

    def _list(self, prefix: tuple[str, ...]) -> Listing:
        if not self.root.is_dir():
            raise ArtifactReadError(f"The artifact root {self.root} is not a directory.")
        listing = Listing()
        level: list[tuple[Path, tuple[str, ...]]] = [(self.root, ())]
        for depth in range(4):
            deeper: list[tuple[Path, tuple[str, ...]]] = []
            for path, parts in level:
                try:
                    entries = sorted(os.scandir(path), key=lambda e: e.name)
                except OSError as error:
                    listing.problems.append(f"Cannot list {path}: {error.strerror}.")
                    continue
                for entry in entries:
                    if not _visible(entry.name) or not entry.is_dir(follow_symlinks=False):
                        continue
                    if depth < len(prefix) and entry.name != prefix[depth]:
                        continue
                    deeper.append((Path(entry.path), (*parts, entry.name)))
            level = deeper
        for path, parts in level:
            key = ArtifactKey(*parts)
            try:
                files = {
                    entry.name: entry.stat().st_size
                    for entry in os.scandir(path)
                    if _visible(entry.name) and entry.is_file(follow_symlinks=False)
                }
                if METADATA_FILE not in files:
                    continue  # not complete yet, or not a capture at all
                listing.captures.append(
                    _parse_metadata(key, (path / METADATA_FILE).read_text(), files)
                )
            except ArtifactReadError as error:
                listing.problems.append(str(error))
            except OSError as error:
                listing.problems.append(f"Cannot read {path}: {error.strerror}.")
        return listing

    async def list_captures(self, prefix: tuple[str, ...] = ()) -> Listing:
        return await asyncio.to_thread(self._list, prefix)

    def _copy(self, source: Path, dest: Path, progress: Progress) -> int:
        temp = dest.with_name(f".{dest.name}.copy")
        written = 0
        try:
            with source.open("rb") as reader, temp.open("wb") as writer:
                while chunk := reader.read(COPY_CHUNK):
                    writer.write(chunk)
                    written += len(chunk)
                    progress(len(chunk))
            shutil.copystat(source, temp)
            temp.rename(dest)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise ArtifactReadError(
                f"Cannot copy {source} to {dest}: {error.strerror or error}."
            ) from None
        return written

    async def fetch(self, capture: Capture, name: str, dest: Path, progress: Progress) -> int:
        source = self.root.joinpath(*capture.key.parts, name)
        return await asyncio.to_thread(self._copy, source, dest, progress)


class StoreArtifacts:
    """Captures mirrored in an object store under its URL's prefix."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @property
    def description(self) -> str:
        return self.store.url_of()

    async def list_captures(self, prefix: tuple[str, ...] = ()) -> Listing:
        try:
            objects = await self.store.list_objects("/".join(prefix))
        except ObjectStoreError as error:
            raise ArtifactReadError(str(error)) from None
        files_by_key: dict[ArtifactKey, dict[str, int]] = {}
        for found in objects:
            parts = found.key.split("/")
            if len(parts) != 5 or not all(_visible(part) for part in parts):
                continue  # not a capture's file, or the writer's own
            files_by_key.setdefault(ArtifactKey(*parts[:4]), {})[parts[4]] = found.size
        complete = [
            (key, files)
            for key, files in sorted(files_by_key.items(), key=lambda kv: kv[0].parts)
            if METADATA_FILE in files
        ]
        listing = Listing()
        limit = asyncio.Semaphore(METADATA_READS_IN_FLIGHT)
        with tempfile.TemporaryDirectory(prefix="spikeprof-metadata-") as scratch:

            async def read(index: int, key: ArtifactKey, files: dict[str, int]) -> Capture | str:
                path = Path(scratch) / f"{index}.json"
                async with limit:
                    try:
                        await self.store.download_file(f"{key.relative_path}/{METADATA_FILE}", path)
                        text = await asyncio.to_thread(path.read_text)
                        return _parse_metadata(key, text, files)
                    except (ObjectStoreError, ArtifactReadError) as error:
                        return str(error)

            results = await asyncio.gather(
                *(read(index, key, files) for index, (key, files) in enumerate(complete))
            )
        for result in results:
            if isinstance(result, str):
                listing.problems.append(result)
            else:
                listing.captures.append(result)
        return listing

    async def fetch(self, capture: Capture, name: str, dest: Path, progress: Progress) -> int:
        try:
            written = await self.store.download_file(f"{capture.key.relative_path}/{name}", dest)
        except ObjectStoreError as error:
            raise ArtifactReadError(str(error)) from None
        progress(written)  # the store streams to disk itself: report the file once it is whole
        return written


async def fetch_listed(source: ArtifactSource, capture: Capture, name: str, dest: Path) -> int:
    """Fetch a file the listing named; if it is gone since, say so without local paths."""
    try:
        return await source.fetch(capture, name, dest, lambda _: None)
    except ArtifactReadError as error:
        log.warning("Cannot fetch %s/%s: %s", capture.key.relative_path, name, error)
        raise ArtifactReadError(
            f"{capture.key.relative_path}/{name} was listed in {source.description} but cannot "
            "be read now: it was removed since, or the store is out of reach."
        ) from error


async def read_profile(
    source: ArtifactSource, capture: Capture, type_: str, scratch: Path
) -> Profile:
    """A capture's profile of one type, fetched into scratch and decoded.

    ArtifactReadError when the capture has no such file, or it cannot be fetched or decoded.
    """
    entry = capture.profile(type_)
    if entry is None or entry.file is None:
        raise ArtifactReadError(f"{capture.key.relative_path} has no {type_} profile file.")
    path = scratch / f"{capture.key.capture_id}-{entry.file}"
    await fetch_listed(source, capture, entry.file, path)
    try:
        return await asyncio.to_thread(decode_file, path)
    except ProfileDecodeError as error:
        raise ArtifactReadError(
            f"The {type_} profile of {capture.key.relative_path} cannot be read: {error}"
        ) from None
