"""MinIO goes away in the middle of an upload and comes back: nothing lost, nothing sent twice."""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable
from pathlib import Path

from localcluster.object_stores import BUCKET, CREDENTIALS, MinioServer, StoreServer

from spikeprof.adapters.object_store import ObjectStore
from spikeprof.adapters.spool import PROGRESS_FILE
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.planner import capture_id
from spikeprof.core.quantities import format_bytes
from spikeprof.services.uploader import Uploader

from .conftest import make_capture, sha256_of

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
PROFILES = {"cpu.pb.gz": 1 << 20, "heap.pb.gz": 200_000}


def key(minutes_ago: int) -> ArtifactKey:
    moment = NOW - datetime.timedelta(minutes=minutes_ago)
    return ArtifactKey("shop", "checkout", "web-1", capture_id(moment, "threshold"))


async def test_captures_wait_out_an_outage_and_each_file_reaches_the_store_exactly_once(
    store_server_factory: Callable[[str], StoreServer], tmp_path: Path
) -> None:
    server = store_server_factory("s3")  # a MinIO of its own: this test stops it
    assert isinstance(server, MinioServer)
    spool = tmp_path / "spool"
    first, second, third, fourth = key(40), key(30), key(20), key(10)
    hashes = {c: make_capture(spool, c, PROFILES) for c in (first, second, third)}
    url = f"s3://{BUCKET}/outage"
    second_metadata = f"{second.relative_path}/{METADATA_FILE}"

    class StopsTheServerMidCapture(ObjectStore):
        """The real store, except that MinIO is stopped as the second capture is finishing."""

        async def upload_file(
            self, key: str, path: Path, *, content_type: str | None = None
        ) -> None:
            if key == second_metadata and server.process is not None:
                await server.settle()  # MinIO has reported every PUT so far
                server.stop()
            await super().upload_file(key, path, content_type=content_type)

    options = server.options(max_retries=2)
    stopping = StopsTheServerMidCapture.from_url(url, options=options, credentials=CREDENTIALS)
    store = ObjectStore.from_url(url, options=options, credentials=CREDENTIALS)

    # The store goes down after the second capture's profiles, before its metadata.json.
    cut = await Uploader(spool, stopping).upload_pending()
    assert cut.uploaded == (first,)
    assert (cut.state.pending_captures, cut.state.pending_bytes > 2 * (1 << 20)) == (2, True)
    assert cut.state.last_error == (
        f"Could not upload metadata.json to {url}/{second_metadata}: {server.endpoint} did not "
        "answer (connection refused; gave up after 2 retries)."
    )
    assert spool.joinpath(*second.parts, PROGRESS_FILE).read_text() == "cpu.pb.gz\nheap.pb.gz\n"

    # While it is down, a restarted operator finds the spool as it was, and one more capture.
    hashes[fourth] = make_capture(spool, fourth, PROFILES)
    uploader = Uploader(spool, store)
    down = await uploader.upload_pending()
    assert down.uploaded == ()
    assert down.state.pending_captures == 3
    assert down.state.message().startswith(
        f"3 capture(s) ({format_bytes(down.state.pending_bytes)} of 1Gi) waiting for the "
        "object store: Could not upload "
        f"metadata.json to {url}/{second_metadata}: {server.endpoint} did not answer"
    )
    for capture in (second, third, fourth):
        assert spool.joinpath(*capture.parts, METADATA_FILE).is_file()

    # Back on the same port and data directory: the rest goes up, then nothing more.
    server.start()
    back = await uploader.upload_pending()
    assert back.uploaded == (second, third, fourth)
    assert (back.state.pending_captures, back.state.last_error) == (0, None)
    assert (await uploader.upload_pending()).uploaded == ()

    await server.settle()
    writes = collections.Counter(server.audit.writes("outage/"))
    expected = {
        f"outage/{capture.relative_path}/{name}" for capture in hashes for name in hashes[capture]
    }
    assert set(writes) == expected
    assert set(writes.values()) == {1}, [k for k, n in writes.items() if n > 1]
    for capture, files in hashes.items():
        for name, digest in files.items():
            copy = tmp_path / "check" / capture.capture_id / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            await store.download_file(f"{capture.relative_path}/{name}", copy)
            assert sha256_of(copy) == digest
