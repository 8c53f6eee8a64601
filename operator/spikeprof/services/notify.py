"""Telling a session's webhooks that a capture ended or the session expired, in the background.

A capture never waits for a webhook: `Notifier` hands each delivery to `Deliveries`, the
operator's set of background tasks, which outlives the session (a one-shot session deleted right
after its capture is still told) and is bounded at shutdown. Each webhook is tried
`DeliveryPolicy.attempts` times with doubling pauses; what came of the latest delivery is kept
in `Notifier.verdict`, which the session's next look writes as the NotificationsDelivered
condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spikeprof.adapters.kube import KubeError
from spikeprof.adapters.webhook import WebhookError
from spikeprof.core import notifications
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import SessionSpec, WebhookSpec
from spikeprof.core.status import Verdict
from spikeprof.telemetry import Metrics

log = logging.getLogger(__name__)

ReadSecret = Callable[[str, str], Awaitable[Mapping[str, str]]]  # (namespace, name) -> data


class Poster(Protocol):
    """Posts one payload once, or raises WebhookError (adapters.webhook.WebhookPoster)."""

    async def post(self, url: str, payload: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int
    """Tries per webhook, at least 1 (SPIKEPROF_NOTIFY_ATTEMPTS)."""
    first_pause: float = 1.0
    """Seconds before the second try; each later pause doubles."""

    def pause(self, after_attempt: int, retry_after: float | None) -> float:
        """The pause after try number `after_attempt` (1-based); a receiver's Retry-After wins
        when it asks for longer."""
        return max(self.first_pause * float(2 ** (after_attempt - 1)), retry_after or 0.0)


class Deliveries:
    """The operator's notifications under way; the factory closes it at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A delivery reports its own failures; anything else is a bug, said once, here.
        if not task.cancelled() and task.exception() is not None:
            log.error("A notification failed unexpectedly.", exc_info=task.exception())

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def close(self, grace: float) -> None:
        """Let deliveries under way finish for `grace` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in late:
            task.cancel()
        for task in late:
            # Cancelled on purpose: the operator is stopping.
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if late:
            log.warning("%d notification(s) were still under way at shutdown.", len(late))


class Notifier:
    """One session's notifications: builds the notice, starts its delivery, keeps the verdict."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        read_secret: ReadSecret,
        poster: Poster,
        deliveries: Deliveries,
        policy: DeliveryPolicy,
        metrics: Metrics,
        artifact_root: Path,
        ui_url: str | None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.read_secret = read_secret
        self.poster = poster
        self.deliveries = deliveries
        self.policy = policy
        self.metrics = metrics
        self.artifact_root = artifact_root
        self.ui_url = ui_url
        self.sleep = sleep
        self.verdict: Verdict | None = None
        """What the latest delivery came to; None until one has finished."""
        self.on_settled: Callable[[], None] = lambda: None
        """Called when a delivery finishes (the worker looks again, to write the condition)."""

    def capture_ended(self, spec: SessionSpec, outcome: CaptureOutcome) -> None:
        notice = notifications.capture_notice(
            self.namespace,
            self.name,
            outcome,
            artifacts_at=self._artifacts_at(spec),
            ui_url=self.ui_url,
        )
        self._send(spec.notify, notice)

    def session_expired(self, spec: SessionSpec, status: SessionStatus) -> None:
        counts = status.captures
        notice = notifications.expiry_notice(
            self.namespace,
            self.name,
            captures=counts.total if counts else 0,
            failed=counts.failed if counts else 0,
            artifacts_at=self._artifacts_at(spec),
            ui_url=self.ui_url,
        )
        self._send(spec.notify, notice)

    def _artifacts_at(self, spec: SessionSpec) -> str:
        # With an object store, the volume only holds captures until they are uploaded.
        return spec.object_store.url if spec.object_store else str(self.artifact_root)

    def _send(self, hooks: Sequence[WebhookSpec], notice: notifications.Notice) -> None:
        if hooks:
            self.deliveries.start(self._deliver(tuple(hooks), notice))

    async def _deliver(self, hooks: tuple[WebhookSpec, ...], notice: notifications.Notice) -> None:
        errors = await asyncio.gather(*(self._tell(hook, notice) for hook in hooks))
        failed = {
            hook.describe(): error for hook, error in zip(hooks, errors, strict=True) if error
        }
        self.verdict = notifications.delivery_verdict(notice, failed, len(hooks))
        self.on_settled()

    async def _tell(self, hook: WebhookSpec, notice: notifications.Notice) -> str | None:
        """Deliver to one webhook with retries: None once delivered, else the last error."""
        error = await self._try_all(hook, notice)
        result = "delivered" if error is None else "failed"
        self.metrics.notifications.labels(hook.format, result).inc()
        if error is not None:
            log.warning(
                "Session %s/%s could not notify %s of %s: %s",
                self.namespace,
                self.name,
                hook.describe(),
                notice.event,
                error,
            )
        return error

    async def _try_all(self, hook: WebhookSpec, notice: notifications.Notice) -> str | None:
        try:
            data = await self.read_secret(self.namespace, hook.secret_name)
        # Missing, forbidden or unreachable: the message says which (and the Helm flag).
        except KubeError as error:
            return str(error)
        url = (data.get(hook.secret_key) or "").strip()
        if not url:
            return f"Secret {self.namespace}/{hook.secret_name} has no key {hook.secret_key}"
        payload = notifications.render(notice, hook.format)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.poster.post(url, payload)
            # Each failed try is counted; the last one's reason is what people see.
            except WebhookError as error:
                self.metrics.notification_attempts.labels(hook.format, "failed").inc()
                if not error.retry or attempt >= self.policy.attempts:
                    return f"{error} (after {attempt} tr{'y' if attempt == 1 else 'ies'})"
                await self.sleep(self.policy.pause(attempt, error.retry_after))
            else:
                self.metrics.notification_attempts.labels(hook.format, "ok").inc()
                return None
