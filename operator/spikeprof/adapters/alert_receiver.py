"""The Alertmanager webhook receiver: an aiohttp app on its own port, inside the operator."""

from __future__ import annotations

import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from spikeprof.core.alerts import Notification, PayloadError, parse_notification
from spikeprof.errors import SpikeprofError

MAX_BODY = 1 << 20  # 1 MiB: a notification with hundreds of alerts is a few hundred KiB
PATH = "/alerts"

log = logging.getLogger("spikeprof.alerts")

Receive = Callable[[Notification], Awaitable[Any]]
NotReady = Callable[[], str | None]
"""Why this replica does not take alerts now (a standby, say), or None when it does."""


def _always_ready() -> str | None:
    return None


class RecordingFailedError(SpikeprofError):
    """The alert could not be recorded durably; Alertmanager should retry (HTTP 503)."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)


def build_app(
    receive: Receive, token: str | None, not_ready: NotReady = _always_ready
) -> web.Application:
    async def alerts(request: web.Request) -> web.Response:
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "missing or wrong bearer token")
        # A standby records nothing: Alertmanager retries, and the Service routes the retry to
        # the ready replica (the leader).
        if (why := not_ready()) is not None:
            return _error(503, f"not ready to record alerts, retry later: {why}")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(
                413, f"the body is {request.content_length} bytes; the limit is {MAX_BODY} bytes"
            )
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _error(413, f"the body is over the limit of {MAX_BODY} bytes")
        try:
            payload = json.loads(body)
        except ValueError as error:
            return _error(400, f"the body is not JSON: {error}")
        try:
            notification = parse_notification(payload)
        except PayloadError as error:
            return _error(400, str(error))
        try:
            result = await receive(notification)
        except RecordingFailedError as error:
            log.warning("Could not record notification %s: %s", notification.group_key, error)
            return _error(503, f"could not record the alerts, retry later: {error}")
        return web.json_response({"status": "ok", "result": str(result)})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        """Ready means: alerts sent here are recorded (the leader, or a live shard)."""
        if (why := not_ready()) is not None:
            return web.Response(status=503, text=f"not ready: {why}\n")
        return web.Response(text="ok\n")

    app = web.Application(client_max_size=MAX_BODY + 1)
    app.router.add_post(PATH, alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class AlertReceiver:
    """Runs the app on an address until stopped."""

    def __init__(
        self,
        receive: Receive,
        *,
        address: str,
        port: int,
        token: str | None,
        tls: ssl.SSLContext | None,
        not_ready: NotReady = _always_ready,
    ) -> None:
        self.runner = web.AppRunner(build_app(receive, token, not_ready), access_log=None)
        self.address = address
        self.port = port
        self.tls = tls

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, self.port, ssl_context=self.tls)
        await site.start()

    async def stop(self) -> None:
        await self.runner.cleanup()


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
