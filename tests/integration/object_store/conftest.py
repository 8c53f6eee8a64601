"""Real object stores for the object store tests: MinIO (S3), fake-gcs-server (GCS), Azurite.

MinIO is built from its Go module by `tools/cluster/build.sh minio` and started on a free
loopback port with a temporary data directory. The bucket is a directory made in the data
directory before the first start, which MinIO serves as a bucket (no client needed to create it).
MinIO sends an audit entry for every API call to a webhook; `AuditLog` is that webhook, a
loopback HTTP server in the test process, so that tests can count the PUTs the server really
received. MinIO runs in its own process group and is killed with the test process if that dies.

fake-gcs-server (`tools/cluster/build.sh fake-gcs-server`) and Azurite's blob service
(`tools/azurite/install.sh`, from npm) run the same way, with their data in a temporary
directory so that a stopped emulator comes back with its objects. Each writes one access-log line
per request, in the order it answered them; `EmulatorServer.requests` reads that log, as the
audit log is read for MinIO. Tests look at what landed through the emulator's own API (GCS's JSON
API, Azure's List Blobs signed here with the account key), not through the adapter under test.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from localcluster.processes import free_port, spawn, stop_group

from spikeprof.adapters.object_store import ObjectStore, StoreOptions
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "cluster" / "build.sh"
MINIO = REPO_ROOT / ".cluster" / "bin" / "minio"
FAKE_GCS = REPO_ROOT / ".cluster" / "bin" / "fake-gcs-server"
AZURITE_INSTALL = REPO_ROOT / "tools" / "azurite" / "install.sh"

BUCKET = "spikeprof-test"
ACCESS_KEY = "spikeprof-test"
SECRET_KEY = "spikeprof-test-secret-key"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

# The S3 calls that write an object: a single PUT, or the completion of a multipart upload.
OBJECT_WRITES = frozenset({"PutObject", "CompleteMultipartUpload"})


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

    def wait_for(self, api: str, key: str, timeout: float = 10.0) -> None:
        """Wait until MinIO has reported a call; entries before it have arrived by then."""
        deadline = time.monotonic() + timeout
        while not any(e.api == api and e.key == key for e in self.snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"MinIO reported no {api} of {key} within {timeout} s")
            time.sleep(0.02)
        # Entries are sent by a queue that may use more than one connection: give a straggler
        # that was sent before the fence a moment to land.
        time.sleep(0.3)


@dataclass
class MinioServer:
    """One MinIO process on a fixed port and data directory; stop and start it at will."""

    binary: Path
    data_dir: Path
    port: int
    log_path: Path
    audit: AuditLog
    process: subprocess.Popen[bytes] | None = None
    fences: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.data_dir / BUCKET).mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.data_dir.parent),
            "MINIO_ROOT_USER": ACCESS_KEY,
            "MINIO_ROOT_PASSWORD": SECRET_KEY,
            "MINIO_BROWSER": "off",  # no web console, no second port
            "MINIO_UPDATE": "off",  # never look for a newer release
            "MINIO_AUDIT_WEBHOOK_ENABLE": "on",
            "MINIO_AUDIT_WEBHOOK_ENDPOINT": self.audit.url,
            "MINIO_AUDIT_WEBHOOK_BATCH_SIZE": "1",
        }
        self.process = spawn(
            [
                str(self.binary),
                "server",
                "--quiet",
                "--address",
                f"127.0.0.1:{self.port}",
                str(self.data_dir),
            ],
            self.log_path,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"MinIO exited with {self.process.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=1):
                    return
            except OSError:
                # Not serving yet: it has just been started.
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"MinIO did not serve {self.endpoint} within 30 s:\n"
                        + self.log_path.read_text()
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None

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
        return ObjectStore.from_url(
            f"s3://{BUCKET}/{prefix}",
            options=self.options(**overrides),
            credentials=CREDENTIALS if credentials is None else credentials,
        )

    async def settle_audit(self) -> None:
        """Return once MinIO has reported every call made so far (a fence object is written)."""
        self.fences += 1
        key = f"audit-fence/{self.fences}"
        fence = self.data_dir.parent / "fence"
        fence.write_bytes(b"fence")
        await self.store("").upload_file(key, fence)
        self.audit.wait_for("PutObject", key)


def _build_minio() -> Path:
    result = subprocess.run(
        [str(BUILD_SCRIPT), "minio"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not MINIO.exists():
        # A missing S3 server fails the tests, in CI and outside it: a skip would prove nothing.
        pytest.fail(f"{BUILD_SCRIPT} minio failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return MINIO


@pytest.fixture(scope="session")
def minio_binary() -> Path:
    return _build_minio()


@pytest.fixture(scope="session")
def minio_factory(
    minio_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], MinioServer]]:
    """Start MinIO servers of their own (for a test that stops one); all stopped at the end."""
    started: list[MinioServer] = []

    def start() -> MinioServer:
        root = tmp_path_factory.mktemp("minio")
        audit = AuditLog()
        audit.start()
        server = MinioServer(minio_binary, root / "data", free_port(), root / "minio.log", audit)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
        server.audit.stop()


@pytest.fixture(scope="session")
def minio(minio_factory: Callable[[], MinioServer]) -> MinioServer:
    """One MinIO shared by the tests that do not stop it; each test writes under its own prefix."""
    return minio_factory()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A prefix of the bucket that belongs to this test alone."""
    return f"tests/{request.node.name.replace('[', '-').replace(']', '')}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """A file of `size` random bytes, written 1 MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 1 << 20)
            handle.write(os.urandom(n))
            left -= n
    return path


def make_capture(
    spool: Path,
    key: ArtifactKey,
    profiles: dict[str, int],
) -> dict[str, str]:
    """A complete capture in the spool, as the volume store leaves it; returns sha256 by file.

    Profiles are random bytes of the given sizes; metadata.json lists them and is written last.
    """
    directory = spool.joinpath(*key.parts)
    hashes: dict[str, str] = {}
    for name, size in profiles.items():
        hashes[name] = sha256_of(write_random(directory / name, size))
    metadata = {
        "captureId": key.capture_id,
        "namespace": key.namespace,
        "session": key.session,
        "pod": key.pod,
        "profiles": [
            {"file": name, "bytes": profiles[name], "sha256": hashes[name]} for name in profiles
        ],
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    hashes[METADATA_FILE] = sha256_of(directory / METADATA_FILE)
    return hashes


# --- fake-gcs-server and Azurite -----------------------------------------------------------------

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

# One line of an access log in the combined format, as both emulators write it.
_ACCESS_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


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


@dataclass(frozen=True)
class Request:
    """One request an emulator answered, from its access log."""

    method: str
    path: str
    """Percent-decoded, without the query."""
    query: dict[str, str]
    status: int


@dataclass
class EmulatorServer:
    """An emulator process on a fixed port and data directory; stop and start it at will."""

    scheme: str
    name: str
    binary: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

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

    def serving(self) -> bool:
        """Whether the emulator answers, and has the test bucket."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Anything to do once the emulator serves (create the bucket, say)."""

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

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None

    def credentials(self) -> dict[str, str]:
        raise NotImplementedError

    def options(self, **overrides: object) -> StoreOptions:
        settings: dict[str, object] = {"allow_http": True}
        settings.update(overrides)
        return StoreOptions(**settings)  # type: ignore[arg-type]

    def store(
        self,
        prefix: str,
        *,
        credentials: dict[str, str] | None = None,
        **overrides: object,
    ) -> ObjectStore:
        return ObjectStore.from_url(
            self.url(prefix),
            options=self.options(**overrides),
            credentials=self.credentials() if credentials is None else credentials,
        )

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
        """Keys written successfully, in the order the emulator answered, under a bucket prefix."""
        keys = (self.object_of(r) for r in self.requests())
        return [k for k in keys if k is not None and k.startswith(under)]

    def wait_for_write(self, key: str, timeout: float = 10.0) -> None:
        """Wait until the log has the write of key: an emulator logs just after it answers."""
        deadline = time.monotonic() + timeout
        while key not in self.writes():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} logged no write of {key} within {timeout} s")
            time.sleep(0.02)

    def listing(self, prefix: str = "") -> dict[str, int]:
        """The objects under a bucket prefix, with their sizes, as the emulator's own API says."""
        raise NotImplementedError


@dataclass
class FakeGcsServer(EmulatorServer):
    """fake-gcs-server with a filesystem backend; the bucket is seeded from a folder."""

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

    def credentials(self) -> dict[str, str]:
        # As the object_store crate's own tests reach fake-gcs-server: the key says where.
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

    def options(self, **overrides: object) -> StoreOptions:
        settings: dict[str, object] = {"endpoint": self.endpoint}
        settings.update(overrides)
        return super().options(**settings)

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


def _build(script: Path, *args: str, binary: Path | None = None) -> Path:
    result = subprocess.run([str(script), *args], capture_output=True, text=True, check=False)
    path = binary or Path(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")
    if result.returncode != 0 or not path.is_file():
        # A missing emulator fails the tests, in CI and outside it: a skip would prove nothing.
        pytest.fail(
            f"{script} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return path


@pytest.fixture(scope="session")
def fake_gcs_binary() -> Path:
    return _build(BUILD_SCRIPT, "fake-gcs-server", binary=FAKE_GCS)


@pytest.fixture(scope="session")
def azurite_binary() -> Path:
    return _build(AZURITE_INSTALL)


@pytest.fixture(scope="session")
def emulator_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], EmulatorServer]]:
    """Start a GCS ("gs") or Azure ("az") emulator of its own; all stopped at the end."""
    started: list[EmulatorServer] = []

    def start(scheme: str) -> EmulatorServer:
        server: EmulatorServer
        if scheme == "gs":
            binary = request.getfixturevalue("fake_gcs_binary")
            root = tmp_path_factory.mktemp("fake-gcs")
            server = FakeGcsServer("gs", "fake-gcs-server", binary, root, free_port())
        elif scheme == "az":
            binary = request.getfixturevalue("azurite_binary")
            root = tmp_path_factory.mktemp("azurite")
            server = AzuriteServer("az", "azurite", binary, root, free_port())
        else:
            raise ValueError(scheme)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_emulators(
    emulator_factory: Callable[[str], EmulatorServer],
) -> Callable[[str], EmulatorServer]:
    """One emulator of each kind, started when first asked for, shared by tests not stopping it."""
    started: dict[str, EmulatorServer] = {}

    def get(scheme: str) -> EmulatorServer:
        if scheme not in started:
            started[scheme] = emulator_factory(scheme)
        return started[scheme]

    return get


@pytest.fixture(params=["gs", "az"])
def emulator(
    request: pytest.FixtureRequest, shared_emulators: Callable[[str], EmulatorServer]
) -> EmulatorServer:
    """fake-gcs-server, then Azurite: each test that takes it runs against both."""
    return shared_emulators(str(request.param))


@pytest.fixture
def fake_gcs(shared_emulators: Callable[[str], EmulatorServer]) -> EmulatorServer:
    return shared_emulators("gs")


@pytest.fixture
def azurite(shared_emulators: Callable[[str], EmulatorServer]) -> AzuriteServer:
    server = shared_emulators("az")
    assert isinstance(server, AzuriteServer)
    return server
