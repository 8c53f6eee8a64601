"""S3 alone, against a real MinIO: multipart uploads in bounded memory, and the S3 error forms
(signature, access key, endpoint, bucket). What every store does is in test_stores.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import obstore
import obstore.store
import pytest
from localcluster.object_stores import ACCESS_KEY, BUCKET, CREDENTIALS, SECRET_KEY, MinioServer
from localcluster.processes import free_port

from spikeprof.adapters.object_store import (
    PART_SIZE,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreAuthError,
    ObjectStoreUnreachableError,
)

from .conftest import sha256_of, write_random

MiB = 1 << 20


def peak_rss_since_reset() -> int:
    """Peak resident bytes of this process since the last `reset_peak_rss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("/proc/self/status has no VmHWM")


def reset_peak_rss() -> int:
    # Writing 5 to clear_refs resets the kernel's high-water mark of RSS to the current RSS.
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_since_reset()


def raw_s3(minio: MinioServer) -> obstore.store.S3Store:
    """A client of our own to look at what the adapter left, not through the adapter."""
    return obstore.store.S3Store(
        BUCKET,
        endpoint=minio.endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        client_options={"allow_http": True},
    )


async def test_a_large_file_goes_up_in_parts_with_memory_far_below_its_size(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    store = minio.store(prefix)
    size = 128 * MiB
    source = write_random(tmp_path / "trace.out", size)
    await store.upload_file("warm-up", write_random(tmp_path / "small", 1000))  # client threads

    baseline = reset_peak_rss()
    await store.upload_file("large/trace.out", source)
    upload_growth = peak_rss_since_reset() - baseline
    print(f"upload of {size / MiB:.0f} MiB: peak RSS grew by {upload_growth / MiB:.1f} MiB")

    head = await obstore.head_async(raw_s3(minio), f"{prefix}/large/trace.out")
    parts = -(-size // PART_SIZE)
    assert head["size"] == size
    assert head["e_tag"] is not None and head["e_tag"].strip('"').endswith(f"-{parts}")
    assert upload_growth < size / 3, f"peak RSS grew by {upload_growth / MiB:.0f} MiB"

    copy = tmp_path / "copy.out"
    baseline = reset_peak_rss()
    await store.download_file("large/trace.out", copy)
    download_growth = peak_rss_since_reset() - baseline
    print(f"download of {size / MiB:.0f} MiB: peak RSS grew by {download_growth / MiB:.1f} MiB")
    assert sha256_of(copy) == sha256_of(source)
    assert download_growth < size / 3, f"peak RSS grew by {download_growth / MiB:.0f} MiB"


async def test_a_wrong_secret_key_is_an_auth_error_that_says_so(
    minio: MinioServer, prefix: str, tmp_path: Path
) -> None:
    store = minio.store(
        prefix, credentials={"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "wrong"}
    )
    with pytest.raises(ObjectStoreAuthError) as caught:
        await store.upload_file("k", write_random(tmp_path / "cpu.pb.gz", 10))
    assert str(caught.value) == (
        f"Could not upload cpu.pb.gz to s3://{BUCKET}/{prefix}/k: {minio.endpoint} refused the "
        "credentials or they do not allow this: The request signature we calculated does not "
        "match the signature you provided. Check your key and signing method. "
        "(SignatureDoesNotMatch)."
    )


async def test_an_unknown_access_key_is_an_auth_error_when_listing_too(
    minio: MinioServer, prefix: str
) -> None:
    store = minio.store(
        prefix, credentials={"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    )
    with pytest.raises(ObjectStoreAuthError) as caught:
        await store.list_objects("shop")
    assert str(caught.value) == (
        f"Could not list s3://{BUCKET}/{prefix}/shop: {minio.endpoint} refused the credentials "
        "or they do not allow this: The Access Key Id you provided does not exist in our "
        "records. (InvalidAccessKeyId)."
    )


async def test_an_endpoint_nobody_listens_on_is_unreachable_after_bounded_retries(
    minio: MinioServer, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = minio.store("x", endpoint=endpoint, max_retries=2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ObjectStoreUnreachableError) as caught:
        await store.upload_file("k", write_random(tmp_path / "heap.pb.gz", 10))
    assert str(caught.value) == (
        f"Could not upload heap.pb.gz to s3://{BUCKET}/x/k: {endpoint} did not answer "
        "(connection refused; gave up after 2 retries)."
    )
    assert asyncio.get_running_loop().time() - started < 10


async def test_a_bucket_that_does_not_exist_is_not_found_with_its_reason(
    minio: MinioServer, tmp_path: Path
) -> None:
    store = ObjectStore.from_url(
        "s3://no-such-bucket/x", options=minio.options(), credentials=CREDENTIALS
    )
    with pytest.raises(ObjectNotFoundError) as caught:
        await store.upload_file("k", write_random(tmp_path / "cpu.pb.gz", 10))
    assert str(caught.value) == (
        "Could not upload cpu.pb.gz to s3://no-such-bucket/x/k: the bucket does not exist at "
        f"{minio.endpoint}: The specified bucket does not exist (NoSuchBucket)."
    )
