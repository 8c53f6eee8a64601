"""The spool: captures wait on local disk until the object store has them, then leave.

The spool is laid out like the artifact volume (`<spool>/<ns>/<session>/<pod>/<capture id>/`),
and a capture is complete once its metadata.json is there (the volume store writes it last and
publishes the directory in one rename). Each complete capture is uploaded to
`<prefix>/<ns>/<session>/<pod>/<capture id>/<file>`, profiles first and metadata.json last, so a
reader of the bucket who sees metadata.json sees every file it lists.

Nothing lost: a capture leaves the spool only after its last upload succeeded and `.uploaded`
was written in its directory; while the store is down, captures stay and wait. Nothing uploaded
twice: each file's successful upload is appended to `.upload-progress` before the next begins,
so a pass cut short (store gone, operator killed) goes on with the files still missing. The one
exception: a crash between a file's upload finishing and its line being written uploads that file
again, to the same key with the same bytes, which replaces the object with an identical one.

The spool is bounded (`max_bytes` of captures not yet uploaded). When it is full, new captures are
refused (`ensure_room` raises SpoolFullError) and the oldest are kept. A capture already taken is
evidence of a moment that has passed, and the start of an incident is what an outage would make
us drop first; a refused capture fails visibly, with a reason, and the next spike captures
again. Nothing is ever deleted from the spool before it is uploaded.

The disk itself (scanning, progress lines, markers, removal) is adapters/spool.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spikeprof.adapters import spool as spool_dir
from spikeprof.adapters.object_store import ObjectStore, ObjectStoreError
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.quantities import format_bytes
from spikeprof.core.retention import RetentionPolicy, StoredCapture, capture_time
from spikeprof.core.retention import captures_to_delete as retention_deletes
from spikeprof.errors import SpikeprofError
from spikeprof.settings import Settings

log = logging.getLogger("spikeprof.uploader")

DEFAULT_MAX_SPOOL_BYTES = Settings.from_env({}).spool_max_bytes
"""SPIKEPROF_SPOOL_MAX_BYTES's default, declared (with its reason) in spikeprof.settings."""

CONTENT_TYPES = {
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
"""Content types a browser opening the object needs; profiles stay application/octet-stream."""


class SpoolFullError(SpikeprofError):
    """The spool holds as many bytes waiting for upload as it may; the message says how many."""


@dataclass(frozen=True)
class SpoolState:
    """What is waiting for the store, and why, for a status condition."""

    pending_captures: int
    pending_bytes: int
    max_bytes: int
    refused_captures: int
    """Captures refused since the operator started because the spool was full."""
    last_error: str | None
    """Why the last pass stopped short; None once a pass went through."""
    last_upload: datetime.datetime | None = None
    """When a capture last reached the store."""

    @property
    def full(self) -> bool:
        return self.pending_bytes >= self.max_bytes

    @property
    def healthy(self) -> bool:
        return self.last_error is None and not self.full

    def message(self) -> str:
        """One sentence (or two) for a condition's message."""
        waiting = (
            f"{self.pending_captures} capture(s) ({format_bytes(self.pending_bytes)} of "
            f"{format_bytes(self.max_bytes)}) waiting for the object store"
        )
        if self.pending_captures == 0 and self.last_error is None:
            text = "Every capture is in the object store."
        elif self.last_error is None:
            text = f"{waiting}."
        else:
            text = f"{waiting}: {self.last_error}"
        if self.refused_captures:
            text += f" {self.refused_captures} capture(s) were refused because the spool was full."
        return text


@dataclass(frozen=True)
class UploadPass:
    """What one `upload_pending` did."""

    uploaded: tuple[ArtifactKey, ...]
    state: SpoolState


@dataclass
class Uploader:
    """Uploads a spool's complete captures to one object store, and applies retention there."""

    spool: Path
    store: ObjectStore
    max_bytes: int = DEFAULT_MAX_SPOOL_BYTES
    """Bytes of captures waiting for upload beyond which new captures are refused."""
    keep_uploaded: bool = False
    """Keep captures in the spool after upload (the spool is also the artifact volume); by
    default an uploaded capture's directory is removed."""
    only_session: tuple[str, str] | None = None
    """(namespace, session) whose captures this uploader handles; None for the whole spool. A
    session with its own store gets its own Uploader over the same spool."""
    clock: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _refused: int = field(default=0, init=False)
    _last_error: str | None = field(default=None, init=False)
    _last_upload: datetime.datetime | None = field(default=None, init=False)
    _pending: tuple[int, int] = field(default=(0, 0), init=False)

    @property
    def state(self) -> SpoolState:
        """The state as of the last look at the spool (a pass, `ensure_room` or `refresh`)."""
        captures, size = self._pending
        return SpoolState(
            pending_captures=captures,
            pending_bytes=size,
            max_bytes=self.max_bytes,
            refused_captures=self._refused,
            last_error=self._last_error,
            last_upload=self._last_upload,
        )

    def scan(self) -> list[spool_dir.SpooledCapture]:
        """Complete captures in the spool, oldest capture id first (blocking: use a thread)."""
        return spool_dir.complete_captures(self.spool, self.only_session)

    async def refresh(self) -> SpoolState:
        """Look at the spool again and return the state."""
        await self._pending_captures()
        return self.state

    async def _pending_captures(self) -> list[spool_dir.SpooledCapture]:
        found = await asyncio.to_thread(self.scan)
        pending = [c for c in found if not c.uploaded]
        self._pending = (len(pending), sum(c.bytes for c in pending))
        if not self.keep_uploaded:
            for leftover in (c for c in found if c.uploaded):
                # Uploaded, then the process stopped before clearing it: finish the job.
                await asyncio.to_thread(spool_dir.remove, leftover.path)
        return pending

    async def ensure_room(self) -> None:
        """Raise SpoolFullError if a new capture may not be spooled; call before capturing."""
        state = await self.refresh()
        if state.full:
            self._refused += 1
            raise SpoolFullError(
                f"The spool holds {format_bytes(state.pending_bytes)} in "
                f"{state.pending_captures} capture(s) waiting for {self.store.url_of()}, its "
                f"limit is {format_bytes(state.max_bytes)}; new captures are refused until "
                "the store takes some."
                + (f" The store's last error: {state.last_error}" if state.last_error else "")
            )

    def wake(self) -> None:
        """Ask `run_forever` for a pass now (a capture just landed) rather than at its interval."""
        self._wake.set()

    async def upload_pending(self) -> UploadPass:
        """Upload every complete capture not yet in the store, oldest first.

        The pass stops at the first error from the store (the next capture would only wait out
        the same retries); what is left stays in the spool for the next pass, and the state says
        why. A capture whose local files went missing is skipped, with its error recorded.
        """
        async with self._lock:
            uploaded: list[ArtifactKey] = []
            error: str | None = None
            for capture in await self._pending_captures():
                try:
                    await self._upload(capture)
                except ObjectStoreError as failure:
                    error = str(failure)
                    log.warning("Upload to the object store stopped: %s", error)
                    break
                except OSError as failure:
                    # The spool itself: a file removed or unreadable under us. The capture
                    # stays for the next pass; the others need not wait for it.
                    error = f"Could not read {capture.key.relative_path} in the spool: {failure}"
                    log.warning("%s", error)
                    continue
                uploaded.append(capture.key)
            self._last_error = error
            await self.refresh()
            return UploadPass(tuple(uploaded), self.state)

    async def _upload(self, capture: spool_dir.SpooledCapture) -> None:
        done = await asyncio.to_thread(spool_dir.uploaded_files, capture.path)
        for name in capture.files:
            if name in done:
                continue
            await self.store.upload_file(
                f"{capture.key.relative_path}/{name}",
                capture.path / name,
                content_type=CONTENT_TYPES.get(Path(name).suffix),
            )
            await asyncio.to_thread(spool_dir.record_uploaded, capture.path, name)
        now = self.clock()
        await asyncio.to_thread(
            spool_dir.mark_uploaded, capture.path, self.store.url_of(capture.key.relative_path), now
        )
        self._last_upload = now
        log.info("Uploaded %s to %s.", capture.key.relative_path, self.store.url_of())
        if not self.keep_uploaded:
            await asyncio.to_thread(spool_dir.remove, capture.path)

    async def run_forever(self, interval: float) -> None:
        """Upload pending captures every `interval` seconds (or on `wake`) until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.upload_pending()
            except Exception:
                # A bug must not end uploads for good: log it whole, and try again next time.
                log.exception("An upload pass failed unexpectedly; retrying in %.0f s.", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def apply_retention(
        self,
        namespace: str,
        session: str,
        policy: RetentionPolicy,
        now: datetime.datetime | None = None,
    ) -> tuple[ArtifactKey, ...]:
        """Delete the session's captures in the store that the policy lets go; return them.

        Each deleted capture loses its metadata.json first, so that a reader never sees a
        complete-looking capture with files missing, then everything else under it.
        """
        async with self._lock:
            objects = await self.store.list_objects(f"{namespace}/{session}")
            keys_by_capture: dict[ArtifactKey, list[str]] = {}
            newest: dict[ArtifactKey, datetime.datetime] = {}
            for found in objects:
                parts = found.key.split("/")
                if len(parts) < 5:
                    continue  # not laid out by us: leave it alone
                key = ArtifactKey(*parts[:4])
                keys_by_capture.setdefault(key, []).append(found.key)
                if key not in newest or found.last_modified > newest[key]:
                    newest[key] = found.last_modified
            stored = [
                # An id we did not write has no time in it: its objects' age stands in.
                StoredCapture(key, capture_time(key.capture_id) or newest[key])
                for key in keys_by_capture
            ]
            doomed = retention_deletes(stored, policy, now or self.clock())
            if not doomed:
                return ()
            metadata = [
                k for c in doomed for k in keys_by_capture[c] if k.endswith("/" + METADATA_FILE)
            ]
            rest = [
                k for c in doomed for k in keys_by_capture[c] if not k.endswith("/" + METADATA_FILE)
            ]
            await self.store.delete(metadata)
            await self.store.delete(rest)
            log.info(
                "Retention deleted %d pod capture(s) of %s/%s from %s.",
                len(doomed),
                namespace,
                session,
                self.store.url_of(),
            )
            return doomed
