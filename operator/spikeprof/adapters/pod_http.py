"""Fetching one pprof profile from a pod over HTTP, streamed to a file, bounded in size and time."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from spikeprof.adapters.port_forward import PortForwardError
from spikeprof.core.quantities import format_bytes, format_duration
from spikeprof.core.results import FailureReason, ProfileError
from spikeprof.core.spec import ProfileRequest

CHUNK = 1 << 16
PROBE_SECONDS = 2.0  # a pprof index answers at once; longer means it is not there yet
# A profile is fetched once per pod and capture, minutes apart: its connection is not kept for
# another. Kept idle in the shared pool, it made every later request dearer (httpcore polls each
# idle socket when it assigns a request); closing it cost ~35% less CPU per fetch, measured
# with 40 fetches at once over 100 pod addresses.
ONE_OFF = {"Connection": "close"}
# Go's net/http/pprof says this when another CPU profile is running in the same process.
IN_USE_MARKERS = ("already in use", "profiling already")


@dataclass(frozen=True)
class Fetched:
    bytes: int
    sha256: str
    seconds: float


def _connect_failure(error: httpx.ConnectError, url: str) -> ProfileError:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, PortForwardError):
            refused = cause.refused
            reason = FailureReason.CONNECTION_REFUSED if refused else FailureReason.UNREACHABLE
            return ProfileError(reason, str(cause))
        if (
            isinstance(cause, ConnectionRefusedError)
            or getattr(cause, "errno", None) == errno.ECONNREFUSED
        ):
            return ProfileError(
                FailureReason.CONNECTION_REFUSED,
                f"{url} refused the connection: nothing listens on that port",
            )
        cause = cause.__cause__ or cause.__context__
    return ProfileError(FailureReason.UNREACHABLE, f"cannot connect to {url}: {error}")


async def pod_ip_accepts(ip: str, port: int) -> bool:
    """Whether a TCP connection to the pod IP and port is accepted (within PROBE_SECONDS)."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            _, writer = await asyncio.open_connection(ip, port)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class ProfileFetcher:
    """Streams profiles from pods with one shared HTTP client (its pool is bounded)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def serves(self, base_url: str) -> bool:
        """Whether the pprof index answers: the endpoint exists (e.g. profiling is armed)."""
        try:
            reply = await self.client.get(f"{base_url}/", timeout=PROBE_SECONDS)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    async def fetch(
        self,
        base_url: str,
        request: ProfileRequest,
        destination: Path,
        *,
        max_bytes: int,
        fetch_timeout: float,
    ) -> Fetched:
        """Write the profile to `destination`; raise ProfileError saying what went wrong.

        `fetch_timeout` is allowed on top of the profile's sampling time, for the whole answer.
        """
        url = f"{base_url}/{request.endpoint}"
        budget = fetch_timeout + (request.seconds or 0.0)
        started = time.monotonic()
        try:
            try:
                async with asyncio.timeout(budget):
                    fetched = await self._stream(url, request, destination, max_bytes, budget)
            except httpx.ConnectError as error:
                raise _connect_failure(error, url) from None
            except (TimeoutError, httpx.TimeoutException):
                raise ProfileError(
                    FailureReason.TIMEOUT,
                    f"{url} gave no complete answer within {format_duration(round(budget))} "
                    f"(sampling {format_duration(request.seconds or 0)} + fetchTimeout "
                    f"{format_duration(round(fetch_timeout))})",
                ) from None
            except httpx.HTTPError as error:
                # Connection reset, malformed HTTP, or the pod going away while it answered.
                raise ProfileError(
                    FailureReason.UNREACHABLE, f"{url} failed mid-answer: {error!r}"
                ) from None
        except ProfileError:
            await asyncio.to_thread(destination.unlink, missing_ok=True)
            raise
        return Fetched(fetched[0], fetched[1], time.monotonic() - started)

    async def _stream(
        self, url: str, request: ProfileRequest, destination: Path, max_bytes: int, budget: float
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        # Connecting must be quick whatever the sampling time; reading waits for the sample.
        limits = httpx.Timeout(budget, connect=min(budget, 10.0))
        async with self.client.stream(
            "GET", url, params=request.query, timeout=limits, headers=ONE_OFF
        ) as reply:
            if reply.status_code != 200:
                body = (await reply.aread())[:500].decode("utf-8", "replace").strip()
                if any(marker in body for marker in IN_USE_MARKERS):
                    raise ProfileError(
                        FailureReason.PROFILING_IN_USE,
                        "the pod is already taking a CPU profile (Go allows one at a time): "
                        + body,
                    )
                raise ProfileError(
                    FailureReason.HTTP_ERROR, f"{url} answered HTTP {reply.status_code}: {body}"
                )
            # Chunks go to the page cache in microseconds; a thread hop per chunk would cost more.
            with destination.open("wb") as sink:
                async for chunk in reply.aiter_raw(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ProfileError(
                            FailureReason.TOO_LARGE,
                            f"the profile exceeded maxProfileBytes ({format_bytes(max_bytes)}); "
                            "reading stopped there and nothing was kept",
                        )
                    digest.update(chunk)
                    sink.write(chunk)
        return size, digest.hexdigest()
