"""The uploader against a real MinIO: each capture once, resumed where it stopped, only complete
ones, one session's own. What every store does with it is in test_stores.py."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from localcluster.object_stores import BUCKET, MinioServer
from localcluster.processes import free_port

from spikeprof.adapters.object_store import ObjectStore, StoreOptions
from spikeprof.adapters.spool import PROGRESS_FILE, UPLOADED_MARKER
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.services.uploader import SpoolFullError, Uploader

from .conftest import capture_key, make_capture

MiB = 1 << 20
PROFILES = {"cpu.pb.gz": 3 * MiB, "heap.pb.gz": 512 * 1024, "goroutine.pb.gz": 2000}


def spool_files(spool: Path) -> list[str]:
    return sorted(
        str(Path(root, name).relative_to(spool))
        for root, _, names in os.walk(spool)
        for name in names
    )


async def test_an_uploaded_capture_is_never_uploaded_again(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first, second = capture_key("web-1"), capture_key("web-2")
    make_capture(spool, first, {"cpu.pb.gz": 1000})
    uploader = Uploader(spool, minio.store(prefix), keep_uploaded=True)
    assert (await uploader.upload_pending()).uploaded == (first,)
    times = {o.key: o.last_modified for o in await uploader.store.list_objects()}

    # A new capture lands; a restarted operator (a new Uploader) looks at the same spool.
    make_capture(spool, second, {"cpu.pb.gz": 1000})
    restarted = Uploader(spool, minio.store(prefix), keep_uploaded=True)
    assert (await restarted.upload_pending()).uploaded == (second,)
    assert (await restarted.upload_pending()).uploaded == ()

    await minio.settle()
    writes = minio.audit.writes(prefix + "/")
    assert len(writes) == len(set(writes)) == 4  # two files of each capture, each written once
    after = {o.key: o.last_modified for o in await uploader.store.list_objects()}
    assert {k: after[k] for k in times} == times
    # Kept in the spool, marked, and not counted as waiting.
    marker = json.loads(spool.joinpath(*first.parts, UPLOADED_MARKER).read_text())
    assert marker["uploadedTo"] == f"s3://{BUCKET}/{prefix}/{first.relative_path}"
    assert restarted.state.pending_captures == 0


async def test_a_capture_cut_short_goes_on_with_only_the_files_still_missing(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    capture = capture_key()
    make_capture(spool, capture, {"cpu.pb.gz": 1000, "heap.pb.gz": 1000})
    # A pass uploaded cpu.pb.gz, then the operator was killed.
    directory = spool.joinpath(*capture.parts)
    store = minio.store(prefix)
    await store.upload_file(f"{capture.relative_path}/cpu.pb.gz", directory / "cpu.pb.gz")
    (directory / PROGRESS_FILE).write_text("cpu.pb.gz\n")

    assert (await Uploader(spool, store).upload_pending()).uploaded == (capture,)

    await minio.settle()
    base = f"{prefix}/{capture.relative_path}/"
    assert minio.audit.writes(base) == [
        base + "cpu.pb.gz",
        base + "heap.pb.gz",
        base + METADATA_FILE,
    ]


async def test_captures_still_being_written_are_left_alone(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    complete = capture_key("web-1")
    make_capture(spool, complete, {"cpu.pb.gz": 1000})
    # The volume store's staging directory, and a directory without metadata.json yet.
    staging = spool / "shop" / "checkout" / "web-2" / f".{capture_key('web-2').capture_id}.partial"
    staging.mkdir(parents=True)
    (staging / "cpu.pb.gz").write_bytes(b"half")
    unfinished = spool.joinpath(*capture_key("web-3").parts)
    unfinished.mkdir(parents=True)
    (unfinished / "cpu.pb.gz").write_bytes(b"no metadata yet")

    done = await Uploader(spool, minio.store(prefix)).upload_pending()

    assert done.uploaded == (complete,)
    assert [o.key for o in await minio.store(prefix).list_objects()] == [
        f"{complete.relative_path}/cpu.pb.gz",
        f"{complete.relative_path}/{METADATA_FILE}",
    ]
    assert (staging / "cpu.pb.gz").exists() and (unfinished / "cpu.pb.gz").exists()


async def test_an_uploader_of_one_session_leaves_the_others_captures_alone(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    mine, theirs = capture_key(session="checkout"), capture_key(session="search")
    make_capture(spool, mine, {"cpu.pb.gz": 10})
    make_capture(spool, theirs, {"cpu.pb.gz": 10})
    uploader = Uploader(spool, minio.store(prefix), only_session=("shop", "checkout"))

    assert (await uploader.upload_pending()).uploaded == (mine,)
    assert spool.joinpath(*theirs.parts, METADATA_FILE).exists()


async def test_a_full_spool_refuses_new_captures_keeps_the_old_ones_and_says_why(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    old = capture_key(hours_ago=2)
    make_capture(spool, old, {"cpu.pb.gz": 2 * MiB})
    nowhere = ObjectStore.from_url(
        "s3://spikeprof-test/p",
        options=StoreOptions(
            endpoint=f"http://127.0.0.1:{free_port()}", allow_http=True, max_retries=0
        ),
        credentials={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
    )
    uploader = Uploader(spool, nowhere, max_bytes=2 * MiB)

    failed = await uploader.upload_pending()
    assert failed.uploaded == ()
    with pytest.raises(SpoolFullError) as caught:
        await uploader.ensure_room()

    assert str(caught.value).startswith(
        "The spool holds 2Mi in 1 capture(s) waiting for s3://spikeprof-test/p, its limit is "
        "2Mi; new captures are refused until the store takes some. The store's last error: "
        "Could not upload cpu.pb.gz to s3://spikeprof-test/p/shop/checkout/web-1/"
    )
    state = uploader.state
    assert (state.pending_captures, state.refused_captures, state.full) == (1, 1, True)
    assert state.message().endswith(
        "did not answer (connection refused). 1 capture(s) were refused because the spool was full."
    )
    assert spool.joinpath(*old.parts, "cpu.pb.gz").exists()  # nothing was dropped


async def test_the_background_loop_uploads_when_woken_and_stops_when_cancelled(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    uploader = Uploader(spool, minio.store(prefix))
    loop = asyncio.create_task(uploader.run_forever(interval=3600))
    await asyncio.sleep(0.2)  # its first pass finds an empty spool

    capture = capture_key()
    make_capture(spool, capture, {"cpu.pb.gz": 1000})
    uploader.wake()  # as the capture flow does when a capture lands
    for _ in range(200):
        if uploader.state.last_upload is not None:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the loop did not upload within 10 s of being woken")

    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert len(await uploader.store.list_objects(capture.relative_path)) == 2
