"""HTTP to pods through the API server's port-forward, for pods the operator cannot dial.

The fetcher's HTTP client mounts `port_forward_transport()` for hosts under
`core.endpoints.PORT_FORWARD_DOMAIN`: each new connection to
`<pod>.<namespace>.port-forward.invalid:<port>` becomes a port-forward websocket to that pod and
port, and HTTP/1.1 runs over it exactly as over TCP, so fetching, limits and timeouts are the
same on both routes. Each request gets its own tunnel (see `port_forward_transport`).

The channel protocol (v4.channel.k8s.io): every binary message starts with its channel number;
channel 0 carries the connection's bytes both ways, channel 1 the kubelet's error text. Each
channel starts with the port number, two bytes little-endian.
"""

# httpcore's interface, which this module implements, takes timeouts as arguments.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

import aiohttp
import httpcore
import httpx

from spikeprof.core.endpoints import PORT_FORWARD_DOMAIN, pod_of_port_forward_host
from spikeprof.errors import SpikeprofError

DATA_CHANNEL = 0
ERROR_CHANNEL = 1
PORT_HEADER_BYTES = 2
# Go's dialer says this when nothing listens on the pod's port, as a refused TCP connect would.
REFUSED_MARKER = "connection refused"


class PortForwardError(SpikeprofError, httpcore.ConnectError):
    """The tunnel could not be opened, or the kubelet could not connect to the pod's port."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class StreamOpener(Protocol):
    async def open(
        self, namespace: str, pod: str, port: int
    ) -> aiohttp.ClientWebSocketResponse: ...


class PortForwardStream(httpcore.AsyncNetworkStream):
    """One TCP connection to a pod's port, carried by one port-forward websocket."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse, where: str) -> None:
        self.websocket = websocket
        self.where = where
        self.buffer = b""
        self.eof = False
        self.header_left = {DATA_CHANNEL: PORT_HEADER_BYTES, ERROR_CHANNEL: PORT_HEADER_BYTES}

    async def wait_open(self) -> None:
        """Until the kubelet has sent the data channel's port header: the tunnel stands.

        Unbounded here: the caller's connect deadline covers it with the handshake.
        """
        while self.header_left[DATA_CHANNEL] and not self.eof:
            await self._receive(None, httpcore.ConnectTimeout)
        if self.eof and not self.buffer:
            raise PortForwardError(f"port-forward to {self.where} closed before it opened")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self.buffer and not self.eof:
            await self._receive(timeout, httpcore.ReadTimeout)
        chunk, self.buffer = self.buffer[:max_bytes], self.buffer[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await self.websocket.send_bytes(bytes([DATA_CHANNEL]) + buffer)
        except TimeoutError:
            raise httpcore.WriteTimeout(f"writing to {self.where} timed out") from None
        except (aiohttp.ClientError, ConnectionError) as error:
            raise httpcore.WriteError(f"writing to {self.where} failed: {error}") from None

    async def aclose(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            await self.websocket.close()

    def get_extra_info(self, info: str) -> Any:
        return None

    async def _receive(self, seconds: float | None, timeout_error: type[Exception]) -> None:
        try:
            async with asyncio.timeout(seconds):
                message = await self.websocket.receive()
        except TimeoutError:
            raise timeout_error(f"no answer from {self.where} in time") from None
        if message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            self.eof = True
            return
        if message.type == aiohttp.WSMsgType.ERROR:
            raise httpcore.ReadError(f"port-forward to {self.where} broke: {message.data}")
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            return
        data: bytes = message.data
        channel, payload = data[0], data[1:]
        if channel not in self.header_left:
            return
        skip = min(self.header_left[channel], len(payload))
        self.header_left[channel] -= skip
        payload = payload[skip:]
        if not payload:
            return
        if channel == DATA_CHANNEL:
            self.buffer += payload
            return
        text = payload.decode("utf-8", "replace").strip()
        raise PortForwardError(
            f"port-forward to {self.where}: {text}", refused=REFUSED_MARKER in text
        )


class PortForwardBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer for port-forward hosts: a connection is a websocket stream."""

    def __init__(self, opener: StreamOpener) -> None:
        self.opener = opener

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = pod_of_port_forward_host(host)
        if target is None:
            raise httpcore.ConnectError(f"{host} is not a {PORT_FORWARD_DOMAIN} host")
        namespace, pod = target
        where = f"pod {namespace}/{pod} port {port}"
        stream: PortForwardStream | None = None
        try:
            # One deadline for the handshake and the kubelet's port headers: the connect
            # timeout means the same as for a direct TCP connection.
            async with asyncio.timeout(timeout):
                try:
                    websocket = await self.opener.open(namespace, pod, port)
                except Exception as error:  # the opener says why; the fetch reports a connect
                    raise PortForwardError(str(error)) from error
                stream = PortForwardStream(websocket, where)
                await stream.wait_open()
        except BaseException as error:
            if stream is not None:
                await stream.aclose()
            if isinstance(error, TimeoutError):
                raise httpcore.ConnectTimeout(
                    f"port-forward to {where}: no answer in time"
                ) from None
            raise
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("port-forward does not reach Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def port_forward_transport(opener: StreamOpener, max_connections: int) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections are port-forward streams opened by `opener`."""
    transport = httpx.AsyncHTTPTransport()
    # httpx has no public way to give its transport another network backend; its connection
    # pool is the documented httpcore one, so it is swapped for one built on port-forward.
    transport._pool = httpcore.AsyncConnectionPool(
        max_connections=max_connections,
        # No keep-alive: an idle tunnel cannot tell it was closed (nothing reads the websocket
        # between requests), and reusing a dead one would fail a fetch. A new tunnel costs
        # ~20 ms (bench/port_forward_cost.py), once per profile.
        max_keepalive_connections=0,
        network_backend=PortForwardBackend(opener),
    )
    return transport


def port_forward_mounts(
    opener: StreamOpener, max_connections: int
) -> dict[str, httpx.AsyncBaseTransport]:
    """The `mounts` for an httpx client that sends port-forward hosts through the tunnel."""
    return {f"all://*.{PORT_FORWARD_DOMAIN}": port_forward_transport(opener, max_connections)}
