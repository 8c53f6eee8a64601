"""Real object stores on loopback: MinIO (S3), fake-gcs-server (GCS) and Azurite (Azure Blob).

Each runs as a process in its own process group on a fixed port and data directory, so that a
stopped store comes back with its objects, and each is killed with the harness if that dies.
MinIO is built from its Go module (`tools/cluster/build.sh minio`); its bucket is a directory made
in the data directory before the first start. fake-gcs-server is built the same way and seeds its
bucket from a folder; Azurite's blob service comes from `tools/azurite/install.sh` (npm) and its
container is made by a signed call.

All three answer one interface: `store(prefix)` (spikeprof's adapter on the bucket's prefix),
`listing(prefix)` (what the store holds, read through its own API, not through the adapter),
`writes(under)` (the keys written, in the order the store answered) and `settle()`. MinIO
reports writes to an audit webhook (`AuditLog`, a loopback HTTP server in the harness); the
emulators write an access-log line per request, in the order they answered them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localcluster.controlplane import REPO_ROOT, build_binaries
from localcluster.processes import spawn, stop_group
from spikeprof.adapters.object_store import ObjectStore, StoreOptions

AZURITE_INSTALL = REPO_ROOT / "tools" / "azurite" / "install.sh"

BUCKET = "spikeprof-test"
ACCESS_KEY = "spikeprof-test"
SECRET_KEY = "spikeprof-test-secret-key"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

# Azurite's one account and its key, both published in Azurite's documentation: not secrets.
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURE_CREDENTIALS = {
    "AZURE_STORAGE_ACCOUNT_NAME": AZURE_ACCOUNT,
    "AZURE_STORAGE_ACCOUNT_KEY": AZURE_KEY,
}
AZURE_API_VERSION = "2021-08-06"

# The S3 calls that write an object: a single PUT, or the completion of a multipart upload.
OBJECT_WRITES = frozenset({"PutObject", "CompleteMultipartUpload"})

# One line of an access log in the combined format, as both emulators write it.
SETTLE_SECONDS = 10.0
"""How long `settle` waits for the store's record of its fence."""

_ACCESS_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


class StoreServerError(RuntimeError):
    """A store could not be built or installed; the message says which and why."""


def gcs_emulator_key(base_url: str | None) -> str:
    """A service account key as the object_store crate reads one for an emulator.

    `disable_oauth` sends requests without a token (fake-gcs-server checks none); `gcs_base_url`,
    when given, points the client at the emulator instead of Google.
    """
    key: dict[str, object] = {
        "disable_oauth": True,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    }
    if base_url is not None:
        key["gcs_base_url"] = base_url
    return json.dumps(key)


@dataclass
class StoreServer:
    """A store process on a fixed port and data directory (under `root`); stop and start it at
    will. Subclasses say how to run it, when it serves, and how to read what it holds."""

    binary: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    fences: int = 0

    scheme = ""
    name = ""
    straggler_seconds = 0.0
    """How long records sent before a fence may still take to arrive after it."""

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """What a user sets as the store's endpoint option."""
        return self.base_url

    def url(self, prefix: str) -> str:
        return f"{self.scheme}://{BUCKET}/{prefix}".rstrip("/")

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}

    def serving(self) -> bool:
        """Whether the store answers, and has the test bucket."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Anything to do once the store serves (create the bucket, say)."""

    def start(self) -> None:
        self.process = spawn(self.command(), self.log_path, env=self.environment())
        deadline = time.monotonic() + 30
        while not self.serving():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n"
                    + self.log_path.read_text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} did not serve {self.base_url} within 30 s:\n"
                    + self.log_path.read_text()[-4000:]
                )
            time.sleep(0.1)
        self.prepare()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        """Stop the store and anything the harness runs beside it."""
        self.stop()

    def credentials(self) -> dict[str, str]:
        raise NotImplementedError

    def options(self, **overrides: object) -> StoreOptions:
        settings: dict[str, object] = {"endpoint": self.endpoint, "allow_http": True}
        settings.update(overrides)
        return StoreOptions(**settings)  # type: ignore[arg-type]

    def store(
        self,
        prefix: str,
        *,
        credentials: dict[str, str] | None = None,
        **overrides: object,
    ) -> ObjectStore:
        """spikeprof's adapter on `prefix` of the bucket."""
        return ObjectStore.from_url(
            self.url(prefix),
            options=self.options(**overrides),
            credentials=self.credentials() if credentials is None else credentials,
        )

    def writes(self, under: str = "") -> list[str]:
        """Keys written successfully, in the order the store answered, under a bucket prefix."""
        raise NotImplementedError

    def listing(self, prefix: str = "") -> dict[str, int]:
        """The objects under a bucket prefix, with their sizes, as the store's own API says."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Return once `writes()` has every write the store answered so far: a fence object is
        written, and the store's record of it awaited (records arrive in answering order)."""
        self.fences += 1
        key = f"settle-fence/{self.fences}"
        fence = self.root / "fence"
        fence.write_bytes(b"fence")
        await self.store("").upload_file(key, fence)
        deadline = time.monotonic() + SETTLE_SECONDS
        while key not in self.writes("settle-fence/"):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} reported no write of {key} within {SETTLE_SECONDS} s"
                )
            await asyncio.sleep(0.02)
        await asyncio.sleep(self.straggler_seconds)


@dataclass(frozen=True)
class AuditEntry:
    api: str
    bucket: str
    key: str
    status: int
    time: str


@dataclass
class AuditLog:
    """MinIO's audit webhook: every call the server handled, in the order it sent them."""

    entries: list[AuditEntry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        audit = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                for line in body.decode().splitlines():
                    if line.strip():
                        audit.record(json.loads(line))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per audit entry on stderr would drown the test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def record(self, entry: dict[str, object]) -> None:
        api = entry.get("api")
        if not isinstance(api, dict):
            return
        with self.lock:
            self.entries.append(
                AuditEntry(
                    api=str(api.get("name", "")),
                    bucket=str(api.get("bucket", "")),
                    key=str(api.get("object", "")),
                    status=int(api.get("statusCode", 0)),
                    time=str(entry.get("time", "")),
                )
            )

    def snapshot(self) -> list[AuditEntry]:
        with self.lock:
            return sorted(self.entries, key=lambda e: e.time)

    def writes(self, under: str = "") -> list[str]:
        """Keys written successfully (each PUT or completed multipart upload once), in order."""
        return [
            e.key
            for e in self.snapshot()
            if e.api in OBJECT_WRITES and e.status == 200 and e.key.startswith(under)
        ]


@dataclass
class MinioServer(StoreServer):
    """MinIO, reporting every call to its audit webhook (`audit`)."""

    audit: AuditLog = field(default_factory=AuditLog)

    scheme = "s3"
    name = "minio"
    # Audit entries are sent by a queue that may use more than one connection: give a straggler
    # that was sent before the fence a moment to land.
    straggler_seconds = 0.3

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def command(self) -> list[str]:
        (self.data_dir / BUCKET).mkdir(parents=True, exist_ok=True)
        return [
            str(self.binary),
            "server",
            "--quiet",
            "--address",
            f"127.0.0.1:{self.port}",
            str(self.data_dir),
        ]

    def environment(self) -> dict[str, str]:
        if self.audit.server is None:
            self.audit.start()
        return {
            **super().environment(),
            "MINIO_ROOT_USER": ACCESS_KEY,
            "MINIO_ROOT_PASSWORD": SECRET_KEY,
            "MINIO_BROWSER": "off",  # no web console, no second port
            "MINIO_UPDATE": "off",  # never look for a newer release
            "MINIO_AUDIT_WEBHOOK_ENABLE": "on",
            "MINIO_AUDIT_WEBHOOK_ENDPOINT": self.audit.url,
            "MINIO_AUDIT_WEBHOOK_BATCH_SIZE": "1",
        }

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=1):
                return True
        except OSError:
            return False  # not serving yet: it has just been started

    def close(self) -> None:
        self.stop()
        self.audit.stop()

    def credentials(self) -> dict[str, str]:
        return dict(CREDENTIALS)

    def writes(self, under: str = "") -> list[str]:
        return self.audit.writes(under)

    def listing(self, prefix: str = "") -> dict[str, int]:
        import obstore
        import obstore.store

        raw = obstore.store.S3Store(
            BUCKET,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            client_options={"allow_http": True},
        )
        # The client lists whole path segments: ask for the last whole one, then filter.
        segments = prefix.rsplit("/", 1)[0] if "/" in prefix else None
        return {
            meta["path"]: meta["size"]
            for meta in obstore.list(raw, segments).collect()
            if meta["path"].startswith(prefix)
        }


@dataclass(frozen=True)
class Request:
    """One request an emulator answered, from its access log."""

    method: str
    path: str
    """Percent-decoded, without the query."""
    query: dict[str, str]
    status: int


@dataclass
class EmulatorServer(StoreServer):
    """An emulator that logs each request it answered (fake-gcs-server, Azurite)."""

    def requests(self) -> list[Request]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.search(line)
            if match:
                target = urllib.parse.urlsplit(match.group(2))
                found.append(
                    Request(
                        method=match.group(1),
                        path=urllib.parse.unquote(target.path),
                        query=dict(urllib.parse.parse_qsl(target.query, keep_blank_values=True)),
                        status=int(match.group(3)),
                    )
                )
        return found

    def object_of(self, request: Request) -> str | None:
        """The key in the bucket a request wrote, if it wrote an object."""
        raise NotImplementedError

    def writes(self, under: str = "") -> list[str]:
        keys = (self.object_of(r) for r in self.requests())
        return [k for k in keys if k is not None and k.startswith(under)]


@dataclass
class FakeGcsServer(EmulatorServer):
    """fake-gcs-server with a filesystem backend; the bucket is seeded from a folder."""

    scheme = "gs"
    name = "fake-gcs-server"

    def command(self) -> list[str]:
        seed = self.root / "seed"
        (seed / BUCKET).mkdir(parents=True, exist_ok=True)
        return [
            str(self.binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(self.root / "storage"),
            "-data",
            str(seed),
        ]

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/storage/v1/b/{BUCKET}", timeout=1):
                return True
        except OSError:
            return False  # not serving yet: it has just been started

    def options(self, **overrides: object) -> StoreOptions:
        # The endpoint comes with the key (gcs_base_url), as the crate's own tests reach it.
        return StoreOptions(**{"allow_http": True, **overrides})  # type: ignore[arg-type]

    def credentials(self) -> dict[str, str]:
        return {"GOOGLE_SERVICE_ACCOUNT_KEY": gcs_emulator_key(self.base_url)}

    def object_of(self, request: Request) -> str | None:
        # An XML API upload: PUT /<bucket>/<key>, answered 200.
        bucket, _, key = request.path.lstrip("/").partition("/")
        if request.method == "PUT" and request.status == 200 and bucket == BUCKET and key:
            return key
        return None

    def listing(self, prefix: str = "") -> dict[str, int]:
        query = urllib.parse.urlencode({"prefix": prefix})
        url = f"{self.base_url}/storage/v1/b/{BUCKET}/o?{query}"
        with urllib.request.urlopen(url, timeout=5) as response:
            items = json.load(response).get("items", [])
        return {item["name"]: int(item["size"]) for item in items}


@dataclass
class AzuriteServer(EmulatorServer):
    """Azurite's blob service, keeping its data in a directory; the container is made by a call."""

    scheme = "az"
    name = "azurite"

    @property
    def endpoint(self) -> str:
        # The account's blob endpoint: Azurite takes the account from the first path segment.
        return f"{self.base_url}/{AZURE_ACCOUNT}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.root / "data"),
            "--skipApiVersionCheck",  # the crate may speak a newer API version than Azurite
            "--loose",
            "--disableTelemetry",  # no reports to Microsoft: the tests stay on loopback
        ]

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/{AZURE_ACCOUNT}?comp=list", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an answer (403 without a signature): it serves
        except OSError:
            return False

    def prepare(self) -> None:
        status, body = self.call("PUT", f"/{BUCKET}", {"restype": "container"})
        # 409: made by an earlier start on the same data directory.
        assert status in (201, 409), f"creating the container: {status} {body[:500]!r}"

    def credentials(self) -> dict[str, str]:
        return dict(AZURE_CREDENTIALS)

    def call(self, method: str, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        """One Blob service request signed with the account key (Shared Key), without a body."""
        date = email.utils.formatdate(usegmt=True)
        resource = f"/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}{path}" + "".join(
            f"\n{name}:{value}" for name, value in sorted(query.items())
        )
        # Verb, eleven standard headers (all empty here), the x-ms- headers, the resource.
        to_sign = "\n".join(
            [method, *[""] * 11, f"x-ms-date:{date}", f"x-ms-version:{AZURE_API_VERSION}", resource]
        )
        key = base64.b64decode(AZURE_KEY)
        signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request(
                method,
                f"/{AZURE_ACCOUNT}{urllib.parse.quote(path)}?{urllib.parse.urlencode(query)}",
                body=b"" if method == "PUT" else None,
                headers={
                    "x-ms-date": date,
                    "x-ms-version": AZURE_API_VERSION,
                    "Authorization": f"SharedKey {AZURE_ACCOUNT}:{signature.decode()}",
                },
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def object_of(self, request: Request) -> str | None:
        # Put Blob, or Put Block List that commits the blocks of a large one; both answer 201.
        prefix = f"/{AZURE_ACCOUNT}/{BUCKET}/"
        if (
            request.method == "PUT"
            and request.status == 201
            and request.path.startswith(prefix)
            and request.query.get("comp", "blocklist") == "blocklist"
        ):
            return request.path[len(prefix) :]
        return None

    def listing(self, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if marker:
                query["marker"] = marker
            status, body = self.call("GET", f"/{BUCKET}", query)
            assert status == 200, f"List Blobs: {status} {body[:500]!r}"
            document = ET.fromstring(body)
            for blob in document.iter("Blob"):
                found[blob.findtext("Name", "")] = int(
                    blob.findtext("Properties/Content-Length", "0")
                )
            marker = document.findtext("NextMarker") or ""
            if not marker:
                return found


SERVERS: dict[str, type[StoreServer]] = {
    "s3": MinioServer,
    "gs": FakeGcsServer,
    "az": AzuriteServer,
}
"""Each store by the scheme of its URLs."""


def build_server_binary(scheme: str) -> Path:
    """Build (or reuse) MinIO or fake-gcs-server, or install Azurite; returns the program."""
    if scheme == "az":
        result = subprocess.run([str(AZURITE_INSTALL)], capture_output=True, text=True, check=False)
        lines = result.stdout.strip().splitlines()
        path = Path(lines[-1]) if lines else Path()
        if result.returncode != 0 or not path.is_file():
            raise StoreServerError(
                f"{AZURITE_INSTALL} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return path
    name = SERVERS[scheme].name
    return build_binaries(name) / name
