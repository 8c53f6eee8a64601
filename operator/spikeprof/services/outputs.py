"""Where a session's artifacts end up besides the volume: upload, spool state, retention."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from spikeprof.adapters.kube import KubeError
from spikeprof.adapters.object_store import ObjectStore, ObjectStoreError, StoreOptions
from spikeprof.adapters.volume import VolumeStore
from spikeprof.core.retention import StoredCapture, capture_time, captures_to_delete
from spikeprof.core.spec import ObjectStoreSpec, SessionSpec
from spikeprof.core.status import Verdict
from spikeprof.services.uploader import SpoolFullError, Uploader

ReadSecret = Callable[[str, str], Awaitable[dict[str, str]]]
TICK_SECONDS = 10.0  # how often pending uploads and retention are looked at without a capture

log = logging.getLogger("spikeprof.outputs")


class SessionOutputs:
    """One session's object-store uploader (rebuilt when its spec changes) and retention."""

    def __init__(
        self,
        namespace: str,
        name: str,
        root: Path,
        read_secret: ReadSecret,
        spool_max_bytes: int,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.volume = VolumeStore(root)
        self.read_secret = read_secret
        self.spool_max_bytes = spool_max_bytes
        self.store_spec: ObjectStoreSpec | None = None
        self.uploader: Uploader | None = None

    async def settle(self, spec: SessionSpec, now: datetime.datetime) -> Verdict | None:
        """Upload what is pending, apply retention; what ArtifactsUploaded says, if anything."""
        if spec.retention is not None and spec.volume_output:
            self._volume_retention(spec, now)
        if spec.object_store is None:
            return None
        return Verdict(*await self._upload(spec, spec.object_store, now))

    async def refusal(self, spec: SessionSpec) -> str | None:
        """Why a new capture may not be taken now (its spool is full), or None."""
        if spec.object_store is None:
            return None
        try:
            uploader = await self._current_uploader(spec, spec.object_store)
        except (KubeError, ObjectStoreError):
            return None  # the store is unusable: ArtifactsUploaded says why; capture anyway
        try:
            await uploader.ensure_room()
        except SpoolFullError as full:
            return str(full)
        return None

    async def _upload(
        self, spec: SessionSpec, store_spec: ObjectStoreSpec, now: datetime.datetime
    ) -> tuple[bool, str, str]:
        try:
            uploader = await self._current_uploader(spec, store_spec)
        except (KubeError, ObjectStoreError) as error:
            return False, "StoreUnusable", f"{store_spec.url}: {error}"
        try:
            result = await uploader.upload_pending()
        except ObjectStoreError as error:
            state = await uploader.refresh()
            return False, "StoreUnreachable", f"{error} {state.message()}"
        state = result.state
        if spec.retention is not None:
            try:
                await uploader.apply_retention(self.namespace, self.name, spec.retention, now)
            except ObjectStoreError as error:
                # The uploads went through; only the clean-up could not: say which.
                message = f"Retention did not run: {error} {state.message()}"
                return False, "StoreUnreachable", message
        if not state.healthy:
            return False, "Spooling", state.message()
        return True, "Uploaded", f"Every capture is in {store_spec.url}. {state.message()}"

    async def _current_uploader(self, spec: SessionSpec, store_spec: ObjectStoreSpec) -> Uploader:
        """The session's uploader, built again when its store settings change."""
        if self.uploader is None or store_spec != self.store_spec:
            self.uploader = await self._uploader(spec, store_spec)
            self.store_spec = store_spec
        return self.uploader

    async def _uploader(self, spec: SessionSpec, store_spec: ObjectStoreSpec) -> Uploader:
        credentials = None
        if store_spec.secret_name:
            credentials = await self.read_secret(self.namespace, store_spec.secret_name)
        store = ObjectStore.from_url(
            store_spec.url,
            options=StoreOptions(
                endpoint=store_spec.endpoint,
                region=store_spec.region,
                virtual_hosted_style=store_spec.virtual_hosted_style,
                allow_http=store_spec.allow_http,
            ),
            credentials=credentials,
        )
        return Uploader(
            spool=self.volume.root,
            store=store,
            keep_uploaded=spec.volume_output,  # the spool is the volume output: keep it there
            only_session=(self.namespace, self.name),
            max_bytes=self.spool_max_bytes,
        )

    def _volume_retention(self, spec: SessionSpec, now: datetime.datetime) -> None:
        assert spec.retention is not None
        keys = self.volume.published(self.namespace, self.name)
        stored = [StoredCapture(k, t) for k in keys if (t := capture_time(k.capture_id))]
        for key in captures_to_delete(stored, spec.retention, now):
            self.volume.delete(key)
            log.info("Retention deleted %s from the volume.", key.relative_path)
