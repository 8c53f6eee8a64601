"""Object store URLs, options and credentials are checked before any request, with sentences."""

from __future__ import annotations

import pytest

from spikeprof.adapters.object_store import (
    ObjectStore,
    ObjectStoreConfigError,
    StoreLocation,
    StoreOptions,
    parse_store_url,
)


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("s3://profiles/spikeprof/prod", StoreLocation("s3", "profiles", "spikeprof/prod")),
        ("s3://profiles", StoreLocation("s3", "profiles", "")),
        ("s3://profiles/", StoreLocation("s3", "profiles", "")),
        ("s3a://profiles//a//b/", StoreLocation("s3", "profiles", "a/b")),
        ("gs://my.bucket/p", StoreLocation("gs", "my.bucket", "p")),
        ("az://container/p", StoreLocation("az", "container", "p")),
        ("abfss://container/p", StoreLocation("az", "container", "p")),
    ],
)
def test_a_store_url_gives_scheme_bucket_and_prefix(url: str, location: StoreLocation) -> None:
    assert parse_store_url(url) == location


def test_the_location_writes_its_url_back() -> None:
    assert parse_store_url("s3://profiles/a/b/").url == "s3://profiles/a/b"
    assert parse_store_url("gs://profiles").url == "gs://profiles"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "/var/lib/spikeprof",
            "'/var/lib/spikeprof' is not an object store URL: use s3://bucket/prefix, "
            "gs://bucket/prefix or az://container/prefix.",
        ),
        (
            "ftp://host/x",
            "'ftp://host/x' is not an object store URL: use s3://bucket/prefix, "
            "gs://bucket/prefix or az://container/prefix.",
        ),
        (
            "s3://My_Bucket/x",
            "'My_Bucket' in 's3://My_Bucket/x' is not a bucket name: 3 to 63 lowercase letters, "
            "digits, dots, dashes or underscores, starting and ending with a letter or digit.",
        ),
        (
            "s3:///x",
            "'' in 's3:///x' is not a bucket name: 3 to 63 lowercase letters, digits, dots, "
            "dashes or underscores, starting and ending with a letter or digit.",
        ),
        (
            "s3://profiles/a/../b",
            "The prefix 'a/../b' in 's3://profiles/a/../b' may not contain '.', '..', '?' or "
            "'#' segments.",
        ),
    ],
)
def test_a_wrong_url_is_refused_with_a_sentence(url: str, message: str) -> None:
    with pytest.raises(ObjectStoreConfigError) as caught:
        parse_store_url(url)
    assert str(caught.value) == message


def test_s3_credentials_from_a_secret_are_accepted_with_or_without_a_session_token() -> None:
    ObjectStore.from_url(
        "s3://profiles/p",
        credentials={"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    ObjectStore.from_url(
        "s3://profiles/p",
        credentials={
            "AWS_ACCESS_KEY_ID": "ASIA",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_SESSION_TOKEN": "t",
        },
    )


def test_no_credentials_means_the_environment_or_workload_identity() -> None:
    store = ObjectStore.from_url("s3://profiles/p", options=StoreOptions(region="eu-west-1"))
    assert store.url_of("shop/x") == "s3://profiles/p/shop/x"


@pytest.mark.parametrize(
    ("url", "credentials", "message"),
    [
        (
            "s3://profiles/p",
            {"AWS_ACCESS_KEY_ID": "AKIA"},
            "The credentials lack AWS_SECRET_ACCESS_KEY: an S3 store needs both "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if temporary).",
        ),
        (
            "s3://profiles/p",
            {"accessKey": "AKIA", "secretKey": "s"},
            "The credentials have key(s) accessKey, secretKey that s3:// stores do not use; "
            "expected some of AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.",
        ),
        (
            "s3://profiles/p",
            {},
            "The credentials are empty: give a Secret with keys such as AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or no Secret to use the operator's own identity.",
        ),
        (
            "gs://profiles/p",
            {"AWS_ACCESS_KEY_ID": "AKIA"},
            "The credentials have key(s) AWS_ACCESS_KEY_ID that gs:// stores do not use; "
            "expected some of GOOGLE_SERVICE_ACCOUNT_KEY.",
        ),
        (
            "az://container/p",
            {"AZURE_STORAGE_ACCOUNT_KEY": "k"},
            "An az:// store needs the storage account: set AZURE_STORAGE_ACCOUNT_NAME in the "
            "credentials or the azure_account option.",
        ),
    ],
)
def test_credentials_that_cannot_work_are_refused_before_any_request(
    url: str, credentials: dict[str, str], message: str
) -> None:
    with pytest.raises(ObjectStoreConfigError) as caught:
        ObjectStore.from_url(url, credentials=credentials)
    assert str(caught.value) == message


def test_azure_takes_the_account_from_the_secret_or_the_options() -> None:
    ObjectStore.from_url(
        "az://container/p",
        credentials={"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "a2V5"},
    )
    ObjectStore.from_url("az://container/p", options=StoreOptions(azure_account="acct"))
