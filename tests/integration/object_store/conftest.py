"""A real MinIO for the object store tests, and its audit log to count what it was asked to do.

MinIO is built from its Go module by `tools/cluster/build.sh minio` and started on a free
loopback port with a temporary data directory. The bucket is a directory made in the data
directory before the first start, which MinIO serves as a bucket (no client needed to create it).
MinIO sends an audit entry for every API call to a webhook; `AuditLog` is that webhook, a
loopback HTTP server in the test process, so that tests can count the PUTs the server really
received. MinIO runs in its own process group and is killed with the test process if that dies.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import urllib.request
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
