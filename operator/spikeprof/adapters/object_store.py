"""An S3, GCS or Azure bucket under a prefix: streaming upload and download, listing, deletion.

Everything goes through obstore (Rust's object_store), which streams files in parts and retries
transient failures itself, with the bounds set below. Its errors are translated here, once, into
`ObjectStoreError` and its subclasses, each with a message a person can act on; nothing above
this module sees an obstore exception.

Keys are relative to the URL's prefix: with `s3://bucket/spikeprof`, key `shop/a/b.json` is the
object `spikeprof/shop/a/b.json`. Listing by prefix matches whole path segments: prefix
`shop/checkout` finds `shop/checkout/...`, never `shop/checkout-2/...`.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import obstore
import obstore.exceptions
import obstore.store

from spikeprof.errors import SpikeprofError

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import (
        AzureConfig,
        ClientConfig,
        GCSConfig,
        RetryConfig,
        S3Config,
        S3Credential,
    )

PART_SIZE = 5 * 1024 * 1024
"""Bytes per part of a multipart upload, and the size above which an upload is multipart: S3's
smallest part, so memory stays low. A 1 GiB profile (maxProfileBytes' ceiling) is 205 parts, far
under S3's limit of 10,000."""

PARTS_IN_FLIGHT = 2
"""Parts of one file uploaded at once. Each part is held in memory (read, hashed, sent) while it
is in flight, so an upload needs a few times PART_SIZE * PARTS_IN_FLIGHT whatever the size of the
file: measured at about 35 MB of peak RSS for files of 100 MB and 500 MB alike."""

MAX_RETRIES = 4
"""Attempts after the first for a request that failed transiently (connection refused or reset,
timeout, 5xx, S3's SlowDown). With RETRY_FIRST_BACKOFF doubling up to RETRY_MAX_BACKOFF that is
about 4 s of waiting: long enough to ride out a store restarting or throttling, short enough that
an outage is reported quickly. A longer outage is the spool's to wait out, not one call's."""

RETRY_FIRST_BACKOFF = datetime.timedelta(milliseconds=250)
"""Wait before the first retry; each later wait doubles, with jitter."""

RETRY_MAX_BACKOFF = datetime.timedelta(seconds=2)
"""Longest wait between two retries."""

RETRY_BUDGET = datetime.timedelta(seconds=30)
"""No retry starts later than this after the first attempt of a request."""

CONNECT_TIMEOUT = datetime.timedelta(seconds=5)
"""Time to open a connection to the store; a store that takes longer is treated as down."""

REQUEST_TIMEOUT = datetime.timedelta(seconds=60)
"""One HTTP request, from connecting to the last byte of the response: one part of an upload,
one page of a listing, or a whole download of a file up to a few tens of MiB at 1 MiB/s."""

OPERATION_TIMEOUT = 120.0
"""Seconds one call of ours may take at most (with its retries), before size is accounted for."""

SLOWEST_TRANSFER = 1024 * 1024
"""Bytes per second below which an upload or download is given up: the deadline of a transfer is
OPERATION_TIMEOUT plus its size at this rate, so large files are not cut off on a slow link."""

DOWNLOAD_CHUNK = 1024 * 1024
"""Bytes of a download gathered before each write to the local file."""

DELETES_IN_FLIGHT = 8
"""Delete requests at once when keys are deleted one by one (after a store reported a missing
key in a bulk delete)."""

Scheme = Literal["s3", "gs", "az"]

_SCHEME_ALIASES: dict[str, Scheme] = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "azure": "az",
    "abfs": "az",
    "abfss": "az",
}

# Names of a bucket or container as the three providers allow them (lowercase letters, digits,
# dots, dashes and underscores, 3 to 63 characters); checked so that a typo fails here, in words.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")

# Credential keys accepted from a Kubernetes Secret, by scheme, with the obstore setting each fills.
# They are the providers' usual environment variable names, so a Secret made for other tools fits.
_S3_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_GCS_CREDENTIAL_KEYS = {"GOOGLE_SERVICE_ACCOUNT_KEY": "service_account_key"}
_AZURE_CREDENTIAL_KEYS = {
    "AZURE_STORAGE_ACCOUNT_NAME": "account_name",
    "AZURE_STORAGE_ACCOUNT_KEY": "account_key",
    "AZURE_STORAGE_SAS_TOKEN": "sas_key",
    "AZURE_CLIENT_ID": "client_id",
    "AZURE_CLIENT_SECRET": "client_secret",
    "AZURE_TENANT_ID": "tenant_id",
}


class ObjectStoreError(SpikeprofError):
    """Something went wrong talking to an object store; the message says what, for a person."""


class ObjectStoreConfigError(ObjectStoreError):
    """The URL, options or credentials cannot work, whatever the store does."""


class ObjectStoreUnreachableError(ObjectStoreError):
    """The store did not answer, or kept failing, within the retries and timeouts."""


class ObjectStoreAuthError(ObjectStoreError):
    """The store refused the credentials, or they do not allow what was asked."""


class ObjectNotFoundError(ObjectStoreError):
    """The key, or the bucket itself, does not exist."""


@dataclass(frozen=True)
class StoreLocation:
    """Where objects go: `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`."""

    scheme: Scheme
    bucket: str
    prefix: str
    """Without leading or trailing slash; empty for the bucket's root."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class StoreOptions:
    """How to reach the store, besides credentials; the defaults suit the provider's own service."""

    endpoint: str | None = None
    """Base URL of an S3-compatible or emulated service (`http://minio.storage:9000`); None
    means the provider's endpoint for the region. For az:// it is the account's blob endpoint,
    as `BlobEndpoint` in a connection string: `https://<account>.blob.core.windows.net`, or
    `http://azurite.storage:10000/devstoreaccount1` for Azurite, whose URLs carry the account in
    the path. For gs:// it replaces `https://storage.googleapis.com`."""
    region: str | None = None
    """S3 region of the bucket; None means the environment's `AWS_REGION`, else `us-east-1`.
    AWS answers a request to the wrong region with an error, not a redirect that is followed."""
    virtual_hosted_style: bool = False
    """S3 only: address the bucket as `bucket.endpoint` instead of `endpoint/bucket` (path
    style, which every S3-compatible server understands)."""
    allow_http: bool = False
    """Allow a plain-HTTP endpoint, for a store inside the cluster or on the test machine."""
    azure_account: str | None = None
    """Azure storage account, when the credentials do not name it (workload identity)."""
    max_retries: int = MAX_RETRIES
    """Retries of a transiently failed request; see MAX_RETRIES."""


@dataclass(frozen=True)
class StoredObject:
    """One object found by a listing."""

    key: str
    """Relative to the store's prefix."""
    size: int
    last_modified: datetime.datetime


def parse_store_url(url: str) -> StoreLocation:
    """Read `s3://bucket/prefix` (also `gs://`, `az://`); raise ObjectStoreConfigError if wrong."""
    scheme_text, sep, rest = url.partition("://")
    scheme = _SCHEME_ALIASES.get(scheme_text.lower())
    if not sep or scheme is None:
        raise ObjectStoreConfigError(
            f"{url!r} is not an object store URL: use s3://bucket/prefix, gs://bucket/prefix "
            "or az://container/prefix."
        )
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_NAME.match(bucket):
        raise ObjectStoreConfigError(
            f"{bucket!r} in {url!r} is not a bucket name: 3 to 63 lowercase letters, digits, "
            "dots, dashes or underscores, starting and ending with a letter or digit."
        )
    segments = [s for s in prefix.split("/") if s]
    if any(s in (".", "..") for s in segments) or "?" in prefix or "#" in prefix:
        raise ObjectStoreConfigError(
            f"The prefix {prefix!r} in {url!r} may not contain '.', '..', '?' or '#' segments."
        )
    return StoreLocation(scheme=scheme, bucket=bucket, prefix="/".join(segments))


def _client_options(options: StoreOptions) -> ClientConfig:
    return {
        "allow_http": options.allow_http,
        "connect_timeout": CONNECT_TIMEOUT,
        "timeout": REQUEST_TIMEOUT,
        "user_agent": "spikeprof",
    }


def _retry_config(options: StoreOptions) -> RetryConfig:
    return {
        "max_retries": options.max_retries,
        "retry_timeout": RETRY_BUDGET,
        "backoff": {
            "init_backoff": RETRY_FIRST_BACKOFF,
            "max_backoff": RETRY_MAX_BACKOFF,
            "base": 2,
        },
    }


def _refuse_unknown_keys(credentials: Mapping[str, str], known: Sequence[str], scheme: str) -> None:
    unknown = sorted(set(credentials) - set(known))
    if unknown:
        raise ObjectStoreConfigError(
            f"The credentials have key(s) {', '.join(unknown)} that {scheme}:// stores do "
            f"not use; expected some of {', '.join(known)}."
        )


def _static_s3_credentials(credentials: Mapping[str, str]) -> S3Credential:
    _refuse_unknown_keys(credentials, _S3_CREDENTIAL_KEYS, "s3")
    missing = [k for k in _S3_CREDENTIAL_KEYS[:2] if not credentials.get(k)]
    if missing:
        raise ObjectStoreConfigError(
            f"The credentials lack {' and '.join(missing)}: an S3 store needs both "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if temporary)."
        )
    return {
        "access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "token": credentials.get("AWS_SESSION_TOKEN") or None,
        "expires_at": None,
    }


def _open_s3(
    location: StoreLocation, options: StoreOptions, credentials: Mapping[str, str] | None
) -> obstore.store.S3Store:
    config: S3Config = {"virtual_hosted_style_request": options.virtual_hosted_style}
    if options.endpoint is not None:
        config["endpoint"] = _base_url(options.endpoint)
    if options.region is not None:
        config["region"] = options.region
    provider = None
    if credentials is not None:
        static = _static_s3_credentials(credentials)

        # A provider rather than config keys: the Secret's credentials are then the only ones
        # used, never mixed with an AWS_SESSION_TOKEN that happens to be in the environment.
        def provider() -> S3Credential:
            return static

    return obstore.store.S3Store(
        location.bucket,
        prefix=location.prefix or None,
        config=config,
        client_options=_client_options(options),
        retry_config=_retry_config(options),
        credential_provider=provider,
    )


def _open_gcs(
    location: StoreLocation, options: StoreOptions, credentials: Mapping[str, str] | None
) -> obstore.store.GCSStore:
    config: GCSConfig = {}
    if options.endpoint is not None:
        # Takes precedence over a `gcs_base_url` in the key, as an option set on the session should.
        config["base_url"] = _base_url(options.endpoint)
    if credentials is not None:
        _refuse_unknown_keys(credentials, list(_GCS_CREDENTIAL_KEYS), "gs")
        if not credentials.get("GOOGLE_SERVICE_ACCOUNT_KEY"):
            raise ObjectStoreConfigError(
                "The credentials lack GOOGLE_SERVICE_ACCOUNT_KEY, the service account's JSON key "
                "that a gs:// store needs."
            )
        config["service_account_key"] = credentials["GOOGLE_SERVICE_ACCOUNT_KEY"]
    try:
        return obstore.store.GCSStore(
            location.bucket,
            prefix=location.prefix or None,
            config=config,
            client_options=_client_options(options),
            retry_config=_retry_config(options),
        )
    except obstore.exceptions.BaseError as error:
        if credentials is None or not _KEY_TROUBLE.search(str(error)):
            raise
        # The key is read (and its private key parsed) here, before any request: say which
        # setting is wrong rather than quoting the crate's decoder.
        raise ObjectStoreConfigError(
            f"Cannot use {location.url}: GOOGLE_SERVICE_ACCOUNT_KEY in the credentials is not a "
            f"usable service account key ({_key_problem(str(error))})."
        ) from error


_KEY_TROUBLE = re.compile(r"credential|pem file|RSA key|private key", re.I)


def _key_problem(text: str) -> str:
    """The decoder's reason, without obstore's prefixes: `missing field private_key`, say."""
    line = _first_line(text)
    for noise in (
        "Generic GCS error: ",
        "Generic AwsLcCryptoProvider error: ",
        "GCP credential error: ",
    ):
        line = line.replace(noise, "")
    return line.replace("`", "").rstrip(".")


def _open_azure(
    location: StoreLocation, options: StoreOptions, credentials: Mapping[str, str] | None
) -> obstore.store.AzureStore:
    config: AzureConfig = {}
    if options.endpoint is not None:
        config["endpoint"] = _base_url(options.endpoint)
    if options.azure_account is not None:
        config["account_name"] = options.azure_account
    if credentials is not None:
        _refuse_unknown_keys(credentials, list(_AZURE_CREDENTIAL_KEYS), "az")
        for secret_key, setting in _AZURE_CREDENTIAL_KEYS.items():
            if secret_key in credentials:
                config[setting] = credentials[secret_key]  # type: ignore[literal-required]
    if "account_name" not in config:
        raise ObjectStoreConfigError(
            "An az:// store needs the storage account: set AZURE_STORAGE_ACCOUNT_NAME in the "
            "credentials or the azure_account option."
        )
    try:
        return obstore.store.AzureStore(
            location.bucket,
            prefix=location.prefix or None,
            config=config,
            client_options=_client_options(options),
            retry_config=_retry_config(options),
        )
    except obstore.exceptions.BaseError as error:
        if "Invalid Access Key" not in str(error):
            raise
        # The key is base64-decoded here, before any request: name the setting that is wrong.
        detail = _first_line(str(error)).rpartition("Invalid Access Key: ")[2].rstrip(".")
        raise ObjectStoreConfigError(
            f"Cannot use {location.url}: AZURE_STORAGE_ACCOUNT_KEY is not a storage account key "
            f"(not base64: {detail})."
        ) from error


def _base_url(endpoint: str) -> str:
    # The crates append "/<bucket>/<key>" to the endpoint: a trailing slash would double it.
    return endpoint.rstrip("/")


def _open(
    location: StoreLocation, options: StoreOptions, credentials: Mapping[str, str] | None
) -> obstore.store.ObjectStore:
    if location.scheme == "s3":
        return _open_s3(location, options, credentials)
    if location.scheme == "gs":
        return _open_gcs(location, options, credentials)
    return _open_azure(location, options, credentials)


def _check_key(key: str) -> None:
    # Keys are built by our own code from Kubernetes names; a bad one is a bug, not a user error.
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"{key!r} is not a relative object key")


def _transfer_deadline(size: int) -> float:
    return OPERATION_TIMEOUT + size / SLOWEST_TRANSFER


# What obstore raises: its own errors, and for some operations built-in ones (FileNotFoundError
# for a missing object or bucket, ValueError for a bad argument). TimeoutError is our deadline.
_STORE_FAILURES = (obstore.exceptions.BaseError, FileNotFoundError, ValueError, TimeoutError)


class ObjectStore:
    """A bucket (or container) under a prefix, reached with one set of credentials."""

    def __init__(
        self,
        location: StoreLocation,
        *,
        options: StoreOptions | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        """Set up the client (no request is made yet); credentials None means ambient identity.

        `credentials` is the data of a Kubernetes Secret: AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN for s3://;
        GOOGLE_SERVICE_ACCOUNT_KEY (the JSON key) for gs://; AZURE_STORAGE_ACCOUNT_NAME with
        AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
        and AZURE_TENANT_ID for az://. With None, obstore finds credentials as the providers'
        SDKs do: environment variables, then workload identity (IRSA or EKS Pod Identity, GKE
        Workload Identity, Azure Workload Identity) or the instance metadata service.
        """
        self.location = location
        self.options = options or StoreOptions()
        if credentials is not None and not credentials:
            raise ObjectStoreConfigError(
                "The credentials are empty: give a Secret with keys such as AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, or no Secret to use the operator's own identity."
            )
        try:
            self._store = _open(location, self.options, credentials)
        except (obstore.exceptions.BaseError, ValueError) as error:
            # obstore checks the configuration as it builds the client: a bad endpoint, say.
            raise ObjectStoreConfigError(
                f"Cannot use {location.url}: {_first_line(str(error))}"
            ) from error

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        options: StoreOptions | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> ObjectStore:
        return cls(parse_store_url(url), options=options, credentials=credentials)

    def url_of(self, key: str = "") -> str:
        """The URL of a key (or of the prefix, for ""), for messages and status."""
        return f"{self.location.url}/{key}".rstrip("/")

    async def upload_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Upload a local file to key, streaming, in parts when large; the object appears whole.

        An object already at key is replaced. The parts of a multipart upload that failed half
        way can stay in an S3 bucket, unseen and billed, until something aborts them: a bucket
        used by spikeprof wants a lifecycle rule that aborts incomplete multipart uploads.
        """
        _check_key(key)
        # A missing local file fails here, as itself, not later as "no such object".
        size = (await asyncio.to_thread(path.stat)).st_size
        attributes: Attributes | None = {"Content-Type": content_type} if content_type else None
        try:
            async with asyncio.timeout(_transfer_deadline(size)):
                await obstore.put_async(
                    self._store,
                    key,
                    path,
                    attributes=attributes,
                    chunk_size=PART_SIZE,
                    max_concurrency=PARTS_IN_FLIGHT,
                )
        except _STORE_FAILURES as error:
            raise self._translate(error, f"upload {path.name} to {self.url_of(key)}") from error

    async def download_file(self, key: str, path: Path) -> int:
        """Stream key into path, which appears whole or not at all; return the bytes written."""
        _check_key(key)
        temp = path.with_name(f".{path.name}.download")
        try:
            written = await self._download_to(key, temp)
            temp.rename(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return written

    async def _download_to(self, key: str, temp: Path) -> int:
        written = 0
        size = 0
        with temp.open("wb") as handle:
            try:
                async with asyncio.timeout(OPERATION_TIMEOUT) as deadline:
                    result = await obstore.get_async(self._store, key)
                    size = result.meta["size"]
                    deadline.reschedule(
                        asyncio.get_running_loop().time() + _transfer_deadline(size)
                    )
                    async for chunk in result.stream(min_chunk_size=DOWNLOAD_CHUNK):
                        # Chunks of ~1 MiB to the local disk: short enough not to hold the loop.
                        written += handle.write(chunk)
            except _STORE_FAILURES as error:
                raise self._translate(error, f"download {self.url_of(key)}") from error
            handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        if written != size:
            raise ObjectStoreUnreachableError(
                f"Could not download {self.url_of(key)}: the store sent {written} of {size} bytes."
            )
        return written

    async def list_objects(self, prefix: str = "") -> list[StoredObject]:
        """Every object under prefix (matching whole path segments), with size and time."""
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix)
        found: list[StoredObject] = []
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                async for page in obstore.list(self._store, prefix or None, chunk_size=1000):
                    found.extend(
                        StoredObject(m["path"], m["size"], m["last_modified"]) for m in page
                    )
        except _STORE_FAILURES as error:
            raise self._translate(error, f"list {self.url_of(prefix)}") from error
        return found

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete keys, in as few requests as the store allows; a missing key is no error."""
        if not keys:
            return
        for key in keys:
            _check_key(key)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await obstore.delete_async(self._store, list(keys))
        except FileNotFoundError as error:
            # S3 deletes missing keys silently; GCS and Azure report each one, and obstore stops
            # at the first report, so keys after it may be left: go over them one by one.
            if _NO_SUCH_BUCKET.search(str(error)):
                raise self._translate(error, f"delete under {self.url_of()}") from error
            await self._delete_each(keys)
        except _STORE_FAILURES as error:
            raise self._translate(
                error, f"delete {len(keys)} object(s) under {self.url_of()}"
            ) from error

    async def _delete_each(self, keys: Sequence[str]) -> None:
        """Delete keys with one request each (a few at a time); a missing key is no error."""
        slots = asyncio.Semaphore(DELETES_IN_FLIGHT)

        async def delete_one(key: str) -> None:
            async with slots:
                try:
                    await obstore.delete_async(self._store, key)
                except FileNotFoundError as error:
                    if _NO_SUCH_BUCKET.search(str(error)):
                        raise

        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                async with asyncio.TaskGroup() as group:
                    for key in keys:
                        group.create_task(delete_one(key))
        except* _STORE_FAILURES as errors:
            error = errors.exceptions[0]
            raise self._translate(
                error, f"delete {len(keys)} object(s) under {self.url_of()}"
            ) from error

    def _translate(self, error: BaseException, doing: str) -> ObjectStoreError:
        return translate_error(
            error, doing, endpoint=self.options.endpoint, scheme=self.location.scheme
        )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no details"


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
# Azure's message goes on with lines "RequestId:..." and "Time:...": the first line is the message.
_S3_MESSAGE = re.compile(r"<Message>([^<\n]+)")
_HTTP_STATUS = re.compile(r"status code: (\d{3})(?: ([A-Za-z ]+))?")
_RETRIES = re.compile(r"after (\d+) retries")
_REQUEST_URL = re.compile(r"Error performing [A-Z]+ ([a-z]+://[^/\s]+)")
_NO_SUCH_BUCKET = re.compile(r"NoSuchBucket|ContainerNotFound|bucket does not exist", re.I)
# Codes of a 404 that mean the key itself is missing; another code names what else is.
_NO_SUCH_KEY_CODES = frozenset({"NoSuchKey", "BlobNotFound"})

# Error codes S3, GCS's XML API and Azure answer when credentials are wrong, expired or too weak.
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
    }
)

# Why a request never got an answer, as obstore's (reqwest's) error text says it, in our words.
_NO_ANSWER = (
    ("connection refused", "connection refused"),
    ("dns error", "host name not found"),
    ("tcp connect error", "could not connect"),
    ("timed out", "timed out"),
    ("connection reset", "connection reset"),
    ("connection closed", "connection closed"),
    ("error sending request", "could not send the request"),
)


def translate_error(
    error: BaseException, doing: str, *, endpoint: str | None, scheme: Scheme = "s3"
) -> ObjectStoreError:
    """Our error, with a sentence a person can act on, for one of obstore's (or a timeout)."""
    text = str(error)
    lowered = text.lower()
    code = _S3_CODE.search(text)
    message = _S3_MESSAGE.search(text)
    status = _HTTP_STATUS.search(text)
    retries = _RETRIES.search(text)
    url = _REQUEST_URL.search(text)
    where = url.group(1) if url else endpoint or "the store"
    said = f"{message.group(1)} ({code.group(1)})" if code and message else None
    status_code = int(status.group(1)) if status else None
    status_text = f"HTTP {status.group(1)} {status.group(2) or ''}".strip() if status else None
    gave_up = f"; gave up after {retries.group(1)} retries" if retries else ""

    if isinstance(error, TimeoutError) and not isinstance(error, obstore.exceptions.BaseError):
        return ObjectStoreUnreachableError(
            f"Could not {doing}: {where} did not finish in the time allowed."
        )
    if (
        isinstance(
            error,
            obstore.exceptions.PermissionDeniedError | obstore.exceptions.UnauthenticatedError,
        )
        or (code is not None and code.group(1) in _AUTH_CODES)
        or status_code in (401, 403)
    ):
        return ObjectStoreAuthError(
            f"Could not {doing}: {where} refused the credentials or they do not allow this: "
            f"{said or status_text or _first_line(text)}."
        )
    if _NO_SUCH_BUCKET.search(text):
        bucket = "container" if scheme == "az" else "bucket"
        return ObjectNotFoundError(
            f"Could not {doing}: the {bucket} does not exist at {where}: {said or status_text}."
        )
    advice = _endpoint_advice(scheme, endpoint, code.group(1) if code else None)
    if isinstance(error, FileNotFoundError) or status_code == 404:
        if code is not None and code.group(1) not in _NO_SUCH_KEY_CODES:
            # Not the object: the account or the path (Azure's ResourceNotFound, say).
            return ObjectNotFoundError(
                f"Could not {doing}: {where} answered {said or status_text}{advice}."
            )
        return ObjectNotFoundError(f"Could not {doing}: there is no such object.")
    if isinstance(error, obstore.exceptions.InvalidPathError | ValueError):
        return ObjectStoreConfigError(f"Could not {doing}: {_first_line(text)}")
    if status_code is not None and (status_code >= 500 or status_code == 429):
        return ObjectStoreUnreachableError(
            f"Could not {doing}: {where} kept failing ({said or status_text}{gave_up})."
        )
    for hint, reason in _NO_ANSWER:
        if hint in lowered:
            return ObjectStoreUnreachableError(
                f"Could not {doing}: {where} did not answer ({reason}{gave_up})."
            )
    return ObjectStoreError(
        f"Could not {doing}: {said or status_text or _first_line(text)}{advice}"
        + ("." if advice else "")
    )


# What Azure (Azurite) answers when the URL's first segments are not account and container.
_WRONG_AZURE_PATH_CODES = frozenset({"ResourceNotFound", "OutOfRangeInput", "InvalidResourceName"})


def _endpoint_advice(scheme: Scheme, endpoint: str | None, code: str | None) -> str:
    """Advice for an az:// endpoint without the account in its path, when the answer fits."""
    if scheme != "az" or not endpoint or code not in _WRONG_AZURE_PATH_CODES:
        return ""
    if urllib.parse.urlsplit(endpoint).path.strip("/"):
        return ""  # the path names the account already
    return (
        "; if the endpoint is an emulator's, it must end with the account, as in "
        "http://azurite:10000/devstoreaccount1"
    )
