"""s3://, gs:// and az:// through the adapter, against MinIO, fake-gcs-server and Azurite.

What every store must do, each test run against all three (the kit's `store_server` fixture):
objects go up, are listed by whole path segments, come down byte for byte and are deleted; the
uploader lands a capture profiles first and metadata.json last; retention deletes exactly the
captures its policy lets go; a stopped store gives one sentence naming it, and captures wait for
it. What landed is read back through the store's own API and its record of writes (MinIO's
audit log, the emulators' access logs), not only through the adapter. Checks that belong to one
store (GCS keys, Azure endpoints and blocks) follow; S3's own are in test_object_store.py.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from localcluster.object_stores import (
    AZURE_ACCOUNT,
    BUCKET,
    AzuriteServer,
    StoreServer,
    gcs_emulator_key,
)

from spikeprof.adapters.object_store import (
    PART_SIZE,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreAuthError,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreUnreachableError,
)
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.retention import RetentionPolicy
from spikeprof.services.uploader import Uploader

from .conftest import NOW, capture_key, make_capture, sha256_of, write_random

MiB = 1 << 20
# The largest profile stays under PART_SIZE: fake-gcs-server has no XML multipart upload.
PROFILES = {"cpu.pb.gz": 3 * MiB, "heap.pb.gz": 512 * 1024, "goroutine.pb.gz": 2000}


async def test_objects_go_up_are_listed_by_whole_segments_come_down_byte_for_byte_and_are_deleted(
    store_server: StoreServer, prefix: str, tmp_path: Path
) -> None:
    store = store_server.store(prefix)
    sizes = {
        "shop/checkout/a": MiB + 17,
        "shop/checkout/b/c": 10,
        "shop/checkout-2/a": 1,
        "shopping/a": 2,
    }
    sources = {k: write_random(tmp_path / "src" / k, n) for k, n in sizes.items()}
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)

    for k, source in sources.items():
        await store.upload_file(k, source)

    # The store holds them under the URL's prefix, with their sizes.
    assert store_server.listing(f"{prefix}/") == {f"{prefix}/{k}": n for k, n in sizes.items()}
    listed = await store.list_objects("shop/checkout")  # whole segments: not checkout-2
    assert {o.key: o.size for o in listed} == {
        "shop/checkout/a": MiB + 17,
        "shop/checkout/b/c": 10,
    }
    assert all(o.last_modified > before for o in listed)
    assert sorted(o.key for o in await store.list_objects("shop/")) == [
        "shop/checkout-2/a",
        "shop/checkout/a",
        "shop/checkout/b/c",
    ]
    assert len(await store.list_objects()) == 4
    assert await store.list_objects("nothing/here") == []

    copy = tmp_path / "copy" / "a"
    copy.parent.mkdir()
    assert await store.download_file("shop/checkout/a", copy) == MiB + 17
    assert sha256_of(copy) == sha256_of(sources["shop/checkout/a"])
    assert os.listdir(copy.parent) == ["a"]  # no temporary left

    await store.delete(["shop/checkout/a", "shop/checkout-2/a", "shopping/a", "shop/never-was"])
    await store.delete([])
    assert [o.key for o in await store.list_objects()] == ["shop/checkout/b/c"]
    assert store_server.listing(f"{prefix}/") == {f"{prefix}/shop/checkout/b/c": 10}


async def test_a_delete_that_meets_a_missing_key_still_deletes_every_other_key(
    store_server: StoreServer, prefix: str, tmp_path: Path
) -> None:
    # GCS and Azure report a missing key where S3 does not; on GCS obstore then stops, and the
    # keys after the missing one were left until the adapter went over them one by one.
    store = store_server.store(prefix)
    body = write_random(tmp_path / "body", 10)
    keys = [f"d/{i:03}" for i in range(300)]  # more than one Azure batch (256)
    for k in keys:
        await store.upload_file(k, body)

    await store.delete(["d/missing", *keys])

    assert await store.list_objects("d") == []
    assert store_server.listing(f"{prefix}/") == {}


async def test_downloading_a_missing_key_is_not_found_and_leaves_no_file(
    store_server: StoreServer, prefix: str, tmp_path: Path
) -> None:
    store = store_server.store(prefix)
    with pytest.raises(ObjectNotFoundError) as caught:
        await store.download_file("no/such/key", tmp_path / "out")
    assert str(caught.value) == (
        f"Could not download {store_server.url(prefix)}/no/such/key: there is no such object."
    )
    assert os.listdir(tmp_path) == []


async def test_a_spooled_capture_goes_up_profiles_first_metadata_last_with_matching_hashes(
    store_server: StoreServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    capture = capture_key()
    hashes = make_capture(spool, capture, PROFILES)
    sizes = {
        **PROFILES,
        METADATA_FILE: spool.joinpath(*capture.parts, METADATA_FILE).stat().st_size,
    }
    uploader = Uploader(spool, store_server.store(prefix), clock=lambda: NOW)

    done = await uploader.upload_pending()

    assert done.uploaded == (capture,)
    assert done.state.pending_captures == 0 and done.state.pending_bytes == 0
    assert done.state.last_error is None and done.state.last_upload == NOW
    assert done.state.message() == "Every capture is in the object store."
    assert not any(files for _, _, files in os.walk(spool))  # uploaded captures leave the spool

    await store_server.settle()
    base = f"{prefix}/{capture.relative_path}/"
    assert store_server.writes(base) == [
        base + name for name in ["cpu.pb.gz", "goroutine.pb.gz", "heap.pb.gz", METADATA_FILE]
    ]
    assert store_server.listing(base) == {base + name: size for name, size in sizes.items()}
    for name, digest in hashes.items():
        copy = tmp_path / "copy" / name
        copy.parent.mkdir(exist_ok=True)
        await uploader.store.download_file(f"{capture.relative_path}/{name}", copy)
        assert sha256_of(copy) == digest
    listed = json.loads((tmp_path / "copy" / METADATA_FILE).read_text())
    assert {p["file"]: p["sha256"] for p in listed["profiles"]} == {
        name: hashes[name] for name in PROFILES
    }


async def test_retention_deletes_exactly_the_captures_the_policy_lets_go(
    store_server: StoreServer, prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # Five captures of checkout (two pods in the newest), one of search, 1 h to 400 h old.
    checkout = [
        capture_key("web-1", 1),
        capture_key("web-2", 1),
        capture_key("web-1", 10),
        capture_key("web-1", 20),
        capture_key("web-2", 30),
        capture_key("web-1", 400),
    ]
    search = [capture_key("api-1", 400, session="search")]
    for capture in [*checkout, *search]:
        make_capture(spool, capture, {"cpu.pb.gz": 100, "heap.pb.gz": 100})
    uploader = Uploader(spool, store_server.store(prefix), clock=lambda: NOW)
    assert len((await uploader.upload_pending()).uploaded) == 7

    policy = RetentionPolicy(max_age_seconds=168 * 3600, max_count=3)
    deleted = await uploader.apply_retention("shop", "checkout", policy)

    assert deleted == (checkout[5], checkout[4])  # 400 h (too old), 30 h (fourth newest)
    left = {k.rsplit("/", 1)[0] for k in store_server.listing(f"{prefix}/")}
    assert left == {f"{prefix}/{c.relative_path}" for c in [*checkout[:4], *search]}
    # Done again, nothing more goes: the policy is already met.
    assert await uploader.apply_retention("shop", "checkout", policy) == ()


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
async def test_a_stopped_store_is_unreachable_in_one_sentence_and_captures_wait_for_it(
    store_server_factory: Callable[[str], StoreServer],
    scheme: str,
    tmp_path: Path,
) -> None:
    server = store_server_factory(scheme)  # its own: this test stops it
    store = server.store("outage", max_retries=2)
    await store.upload_file("before", write_random(tmp_path / "before", 10))
    spool = tmp_path / "spool"
    capture = capture_key()
    hashes = make_capture(spool, capture, {"cpu.pb.gz": 1000, "heap.pb.gz": 2000})

    server.stop()
    with pytest.raises(ObjectStoreUnreachableError) as caught:
        await store.upload_file("k", write_random(tmp_path / "heap.pb.gz", 10))
    assert str(caught.value) == (
        f"Could not upload heap.pb.gz to {server.url('outage')}/k: {server.base_url} did not "
        "answer (connection refused; gave up after 2 retries)."
    )
    with pytest.raises(ObjectStoreUnreachableError) as caught:
        await store.list_objects()
    assert str(caught.value).startswith(
        f"Could not list {server.url('outage')}: {server.base_url} did not answer"
    )
    uploader = Uploader(spool, store)
    down = await uploader.upload_pending()
    assert (down.uploaded, down.state.pending_captures) == ((), 1)
    assert down.state.last_error is not None
    assert f"{server.base_url} did not answer" in down.state.last_error

    server.start()  # same port, same data directory
    assert (await uploader.upload_pending()).uploaded == (capture,)
    listed = server.listing("outage/")
    assert set(listed) == {"outage/before"} | {
        f"outage/{capture.relative_path}/{name}" for name in hashes
    }


# --- GCS ----------------------------------------------------------------------------------------


async def test_gcs_the_endpoint_option_replaces_the_key_base_url(
    fake_gcs: StoreServer, prefix: str, tmp_path: Path
) -> None:
    # A key without gcs_base_url (disable_oauth still: the emulator checks no token), and the
    # session's endpoint option, with a trailing slash as a person may write it.
    store = ObjectStore.from_url(
        fake_gcs.url(prefix),
        options=fake_gcs.options(endpoint=fake_gcs.base_url + "/"),
        credentials={"GOOGLE_SERVICE_ACCOUNT_KEY": gcs_emulator_key(None)},
    )
    await store.upload_file("a/b", write_random(tmp_path / "b", 100))
    assert fake_gcs.listing(f"{prefix}/") == {f"{prefix}/a/b": 100}
    assert [o.key for o in await store.list_objects("a")] == ["a/b"]


@pytest.mark.parametrize(
    ("service_account_key", "problem"),
    [
        ("not json", "Unable to decode service account file: expected ident at line 1 column 2"),
        (
            json.dumps({"client_email": "spikeprof@example.iam.gserviceaccount.com"}),
            "Unable to decode service account file: missing field private_key at line 1 column 61",
        ),
        (
            json.dumps(
                {
                    "client_email": "spikeprof@example.iam.gserviceaccount.com",
                    "private_key_id": "1",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                }
            ),
            "Invalid RSA key: InvalidEncoding",
        ),
    ],
    ids=["not-json", "no-private-key", "private-key-not-rsa"],
)
def test_gcs_a_key_that_cannot_be_used_is_refused_in_one_sentence_before_any_request(
    fake_gcs: StoreServer, service_account_key: str, problem: str
) -> None:
    # fake-gcs-server accepts any token, so a well-formed but wrong key cannot be refused here;
    # one that is not a key at all is refused by the adapter, naming the store and the setting.
    with pytest.raises(ObjectStoreConfigError) as caught:
        fake_gcs.store("x", credentials={"GOOGLE_SERVICE_ACCOUNT_KEY": service_account_key})
    assert str(caught.value) == (
        f"Cannot use gs://{BUCKET}/x: GOOGLE_SERVICE_ACCOUNT_KEY in the credentials is not a "
        f"usable service account key ({problem})."
    )


# --- Azure --------------------------------------------------------------------------------------


async def test_azure_a_wrong_account_key_is_an_auth_error_that_says_so(
    azurite: AzuriteServer, prefix: str, tmp_path: Path
) -> None:
    wrong = {"AZURE_STORAGE_ACCOUNT_NAME": AZURE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": "d3Jvbmc="}
    store = azurite.store(prefix, credentials=wrong)
    refused = (
        f"{azurite.base_url} refused the credentials or they do not allow this: Server failed "
        "to authenticate the request. Make sure the value of the Authorization header is formed "
        "correctly including the signature. (AuthorizationFailure)."
    )
    with pytest.raises(ObjectStoreAuthError) as caught:
        await store.upload_file("k", write_random(tmp_path / "cpu.pb.gz", 10))
    assert str(caught.value) == f"Could not upload cpu.pb.gz to az://{BUCKET}/{prefix}/k: {refused}"
    with pytest.raises(ObjectStoreAuthError) as caught:
        await store.list_objects("shop")
    assert str(caught.value) == f"Could not list az://{BUCKET}/{prefix}/shop: {refused}"
    assert azurite.listing(f"{prefix}/") == {}


def test_azure_an_account_key_that_is_not_base64_is_refused_before_any_request(
    azurite: AzuriteServer,
) -> None:
    with pytest.raises(ObjectStoreConfigError) as caught:
        azurite.store(
            "x",
            credentials={
                "AZURE_STORAGE_ACCOUNT_NAME": AZURE_ACCOUNT,
                "AZURE_STORAGE_ACCOUNT_KEY": "not base64!",
            },
        )
    assert str(caught.value) == (
        f"Cannot use az://{BUCKET}/x: AZURE_STORAGE_ACCOUNT_KEY is not a storage account key "
        "(not base64: Invalid symbol 32, offset 3)."
    )


@pytest.mark.parametrize(
    ("prefix", "kind", "answer"),
    [
        # Azurite reads the container as the account, and the prefix's first segment as the
        # container: too short a name, or one that does not exist.
        (
            "x",
            ObjectStoreError,
            "The specified resource name length is not within the permissible limits. "
            "(OutOfRangeInput)",
        ),
        (
            "tests/x",
            ObjectNotFoundError,
            "{base_url} answered The specified resource does not exist. (ResourceNotFound)",
        ),
    ],
    ids=["container-as-account", "unknown-account"],
)
async def test_azure_an_endpoint_without_the_account_says_what_the_endpoint_should_be(
    azurite: AzuriteServer,
    prefix: str,
    kind: type[ObjectStoreError],
    answer: str,
    tmp_path: Path,
) -> None:
    store = azurite.store(prefix, endpoint=azurite.base_url, max_retries=0)
    with pytest.raises(ObjectStoreError) as caught:
        await store.upload_file("k", write_random(tmp_path / "cpu.pb.gz", 10))
    assert type(caught.value) is kind
    assert str(caught.value) == (
        f"Could not upload cpu.pb.gz to az://{BUCKET}/{prefix}/k: "
        + answer.format(base_url=azurite.base_url)
        + "; if the endpoint is an emulator's, it must end with the account, as in "
        "http://azurite:10000/devstoreaccount1."
    )


async def test_azure_a_container_that_does_not_exist_is_not_found_with_its_reason(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    store = ObjectStore.from_url(
        "az://no-such-container/x",
        options=azurite.options(endpoint=azurite.endpoint + "/"),  # a trailing slash is fine
        credentials=azurite.credentials(),
    )
    with pytest.raises(ObjectNotFoundError) as caught:
        await store.upload_file("k", write_random(tmp_path / "cpu.pb.gz", 10))
    assert str(caught.value) == (
        "Could not upload cpu.pb.gz to az://no-such-container/x/k: the container does not exist "
        f"at {azurite.base_url}: The specified container does not exist. (ContainerNotFound)."
    )


async def test_azure_a_file_larger_than_a_part_goes_up_in_blocks_and_comes_down_whole(
    azurite: AzuriteServer, prefix: str, tmp_path: Path
) -> None:
    size = 2 * PART_SIZE + 123
    source = write_random(tmp_path / "trace.out", size)
    store = azurite.store(prefix)

    await store.upload_file("large/trace.out", source)

    path = f"/{AZURE_ACCOUNT}/{BUCKET}/{prefix}/large/trace.out"
    await azurite.settle()
    calls = [(r.query.get("comp"), r.status) for r in azurite.requests() if r.path == path]
    assert calls == [("block", 201)] * 3 + [("blocklist", 201)]
    assert azurite.listing(f"{prefix}/") == {f"{prefix}/large/trace.out": size}
    copy = tmp_path / "copy.out"
    assert await store.download_file("large/trace.out", copy) == size
    assert sha256_of(copy) == sha256_of(source)
