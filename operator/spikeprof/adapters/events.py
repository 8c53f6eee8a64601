"""core/v1 Events about sessions, each sent only if this replica may still act when it is sent.

kopf.event() queues an event that kopf's poster sends a moment later. A leader paused (SIGSTOP)
between the two would post it after waking, when another replica leads: an action after its
fence closed. Here the fence (`may_post`) is asked again right before each request, and an event
whose replica no longer serves the namespace is dropped. While the API server is away, sending is
retried (as kopf's posting backoffs did), as long as the fence stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("spikeprof.events")

REQUEST_SECONDS = 10.0
BACKOFFS = (0.5, 1.0, 2.0) + (3.0,) * 200
"""Seconds between tries while the API server is away: about ten minutes, at most 3 s apart, as
kopf's own API retries are set (handlers.startup), so an outage's events arrive once it ends."""
MAX_MESSAGE = 1024  # the API server refuses longer event messages


@dataclass(frozen=True)
class _Event:
    involved: Mapping[str, Any]
    type: str
    reason: str
    message: str
    may_post: Callable[[], bool]


def involved_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reference an event names its object by (as kubectl describe finds it)."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
    }


def _micro_time(at: datetime.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventPoster:
    """Sends events in the order posted, one at a time, in a task of its own."""

    def __init__(
        self,
        api_client: Any,
        *,
        component: str,
        instance: str,
        backoffs: Sequence[float],
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.component = component
        self.instance = instance
        self.backoffs = tuple(backoffs)
        self._queue: asyncio.Queue[_Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def post(
        self,
        involved: Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        may_post: Callable[[], bool],
    ) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event poster")
        self._queue.put_nowait(_Event(involved, type, reason, message, may_post))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            await self._send(event)

    async def _send(self, event: _Event) -> None:
        for delay in (0.0, *self.backoffs):
            await asyncio.sleep(delay)
            if not event.may_post():
                log.info("Not posting %s: this replica no longer serves here.", event.reason)
                return
            try:
                async with asyncio.timeout(REQUEST_SECONDS):
                    await self.core.create_namespaced_event(
                        event.involved.get("namespace") or "default",
                        self._body(event),  # type: ignore[arg-type]  # a dict, sent as it is
                    )
                return
            # The API server is away: try again after the next backoff.
            except (aiohttp.ClientError, TimeoutError) as error:
                log.debug("Posting %s waits for the API server: %r", event.reason, error)
            except ApiException as error:
                if error.status not in (429, 500, 502, 503, 504):
                    # Events are for people; a refused one must not stop the session.
                    log.warning(
                        "Could not post %s: HTTP %s %s", event.reason, error.status, error.reason
                    )
                    return
        log.warning("Gave up posting %s: the API server did not answer.", event.reason)

    def _body(self, event: _Event) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC)
        message = event.message
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        return {
            "metadata": {
                "namespace": event.involved.get("namespace"),
                "generateName": f"{event.involved.get('name')}.",
            },
            "action": event.reason,
            "type": event.type,
            "reason": event.reason,
            "message": message,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "source": {"component": self.component},  # kubectl describe's "From" column
            "involvedObject": dict(event.involved),
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventTime": _micro_time(now),
        }
