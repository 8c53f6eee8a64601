"""From an Alertmanager notification to captures recorded durably in the sessions' status.

The receiver answers 2xx only after `AlertIntake.receive` returns, that is after every matched
session's status holds the alert as pending: a crash right after the answer still captures,
since the session's loop finds the pending alert when the operator comes back. When the API
refuses the write, the receiver answers 5xx and Alertmanager retries.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spikeprof.adapters.alert_receiver import RecordingFailedError
from spikeprof.adapters.kube import KubeError, SessionGoneError
from spikeprof.core.alerts import Alert, Notification, alert_pods
from spikeprof.core.planner import format_time
from spikeprof.core.pods import PodInfo
from spikeprof.core.session_status import PendingAlert
from spikeprof.core.spec import SessionSpec, SpecError, parse_spec
from spikeprof.services.status_outbox import StatusPatcher
from spikeprof.telemetry import Metrics

POD_READS_AT_ONCE = 16
"""Pods read at once for one notification (those named in namespaces served elsewhere)."""

RECENT_SECONDS = 3600.0  # keys recorded by this process, remembered beyond the watch's lag

WRITE_SPACING_SECONDS = 0.1
"""The least time between the starts of two writes of one session's pending alerts. Group
commit alone writes again as soon as a write returns, so a steady stream of alerts kept the API
server busy whatever a write cost (about one core in the 50 alerts/s benchmark); spaced, a burst
costs at most ten writes a second per session, and an answer waits at most this much longer.
The first alert after a quiet spell is written at once."""

PENDING_ALERTS_LIMIT = 1000
"""Alerts a session's status may hold waiting for a capture. Past it, the receiver answers 503
and Alertmanager sends them again later: an entry is ~150 bytes of status, which every write of
the session and every watch event carries, and the object may not pass etcd's 1.5 MiB limit,
after which no write of the session (its captures' records included) would land. The 200
alerts/s benchmark drains well below it; only captures that cannot keep up reach it."""


@dataclass
class SessionView:
    """What the alert intake may see of a live session (kept current by its daemon)."""

    namespace: str
    name: str
    spec: SessionSpec
    pods: Callable[[], list[PodInfo]]  # the session's selected pods now
    status: Callable[[], Mapping[str, Any]]
    # Hands alerts being recorded to the session's loop and wakes it, with the write that
    # records them (settles once they are in status, or fails): the capture starts while that
    # write is under way, and its own status writes and artifacts wait for it.
    deliver: Callable[[Mapping[str, Any], asyncio.Future[None]], None]
    # Alerts the session's status holds or will hold once the writes under way land, less those
    # its captures have answered: what its loop knows, fresher than any watched status.
    waiting: Callable[[], int]


@dataclass
class StandbyView:
    """A session whose daemon runs here but which is not served here (yet): another shard
    serves it, or its worker has not registered. An alert for it is recorded in its status all
    the same; whoever serves it captures from there."""

    namespace: str
    name: str
    spec: Mapping[str, Any]  # kopf's live views of the session
    status: Mapping[str, Any]

    def parsed(self) -> SessionSpec | None:
        try:
            return parse_spec(self.spec)
        except SpecError:  # an invalid spec matches nothing
            return None


@dataclass(frozen=True)
class _Match:
    """A session an alert's labels match, and the pods it asks for there ((): none)."""

    namespace: str
    name: str
    pods: tuple[str, ...] | None
    status: Mapping[str, Any]
    waiting: Callable[[], int] | None  # a session served here counts its own


@dataclass
class _Batch:
    """Entries waiting for one status write; `done` settles when it is written (or failed)."""

    entries: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    started: bool = False
    task: asyncio.Task[None] | None = None


def listens_for_alerts(spec: Mapping[str, Any]) -> bool:
    """The session's spec is valid and has `trigger.alerts` (an invalid one matches nothing)."""
    try:
        return parse_spec(spec).trigger.alerts is not None
    except SpecError:
        return False


class SessionRegistry:
    def __init__(self) -> None:
        self._views: dict[tuple[str, str], SessionView] = {}
        # Sessions known to exist (kopf runs a daemon for each), and whether each listens for
        # alerts: until such a session is registered here, an alert it would match is lost.
        self._expected: dict[tuple[str, str], Callable[[], bool]] = {}
        self._standby: dict[tuple[str, str], StandbyView] = {}

    def expect(self, namespace: str, name: str, listens: Callable[[], bool]) -> None:
        self._expected[(namespace, name)] = listens

    def stand_by(self, namespace: str, name: str, spec: Mapping[str, Any], status: Any) -> None:
        """The session as kopf sees it, for alerts that arrive while it is not served here."""
        self._standby[(namespace, name)] = StandbyView(namespace, name, spec, status)

    def forget(self, namespace: str, name: str) -> None:
        self._expected.pop((namespace, name), None)
        self._standby.pop((namespace, name), None)

    def standing_by(self) -> list[StandbyView]:
        """Known sessions with no worker registered here (served by another shard, say)."""
        return [view for key, view in self._standby.items() if key not in self._views]

    def unregistered(self, owned: Callable[[str], bool]) -> list[str]:
        """Sessions in `owned` namespaces that listen for alerts and are not registered yet
        (just after this replica started to serve them): alerts must wait until they are."""
        return sorted(
            f"{namespace}/{name}"
            for (namespace, name), listens in self._expected.items()
            if (namespace, name) not in self._views and owned(namespace) and listens()
        )

    def register(self, view: SessionView) -> None:
        self._views[(view.namespace, view.name)] = view

    def unregister(self, namespace: str, name: str) -> None:
        self._views.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> SessionView | None:
        return self._views.get((namespace, name))

    def views(self) -> list[SessionView]:
        return list(self._views.values())


@dataclass(frozen=True)
class IntakeResult:
    recorded: int  # (alert, session) pairs now pending
    duplicates: int  # re-sends of alerts already pending or handled
    unmatched: int  # firing alerts no session reacts to
    resolved: int  # resolved alerts, which capture nothing

    def __str__(self) -> str:
        return (
            f"recorded {self.recorded}, duplicates {self.duplicates}, "
            f"unmatched {self.unmatched}, resolved {self.resolved}"
        )


def _known(status: Mapping[str, Any], key: str) -> bool:
    """Whether the session's status already holds the alert, pending or handled.

    Read from the raw status: parsing all of it (every pending alert) for each alert received
    made a burst of alerts quadratic, and kept the receiver from answering.
    """
    pending = status.get("pendingAlerts")
    handled = status.get("alertsHandled")
    return (isinstance(pending, Mapping) and bool(pending.get(key))) or (
        isinstance(handled, list) and key in handled
    )


FindPod = Callable[[str, str], Awaitable[PodInfo | None]]


async def _no_pod(namespace: str, name: str) -> PodInfo | None:
    return None


class AlertIntake:
    def __init__(
        self,
        registry: SessionRegistry,
        writer: StatusPatcher,
        find_pod: FindPod = _no_pod,
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.writer = writer
        # Reads a pod of a namespace that is not watched here (another shard serves it).
        self.find_pod = find_pod
        self._recent: dict[tuple[str, str, str], float] = {}
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._inflight: dict[tuple[str, str], _Batch] = {}  # the last write queued
        # Keys of each session whose write is gathering or under way.
        self._unsettled: dict[tuple[str, str], set[str]] = {}
        # Loop time each session's last write started, oldest first; kept only while it still
        # spaces the next write.
        self._last_write: dict[tuple[str, str], float] = {}
        self.metrics = metrics

    def _record(self, namespace: str, name: str, entries: dict[str, Any]) -> asyncio.Future[None]:
        """Queue entries for the session's status, together with those of concurrent requests;
        the future settles with the write that carries them (or fails with it).

        Group commit: while one patch of a session is in flight, the entries of the requests that
        arrive meanwhile gather into the next one, so a burst of notifications costs the API
        server one write per round trip, not one per alert.
        """
        key = (namespace, name)
        batch = self._batches.get(key)
        if batch is None or batch.started:
            batch = self._batches[key] = _Batch()
            batch.task = asyncio.create_task(self._flush(key, batch))
        batch.entries.update(entries)
        self._unsettled.setdefault(key, set()).update(entries)
        return batch.done

    async def _flush(self, key: tuple[str, str], batch: _Batch) -> None:
        previous = self._inflight.get(key)
        self._inflight[key] = batch
        try:
            if previous is not None:
                # One write of a session at a time, in order; how it ended is its requests' own.
                await asyncio.wait([previous.done])
            loop = asyncio.get_running_loop()
            next_write = self._last_write.get(key, float("-inf")) + WRITE_SPACING_SECONDS
            if next_write > loop.time():
                await asyncio.sleep(next_write - loop.time())  # entries keep gathering meanwhile
            self._last_write.pop(key, None)  # re-inserted last: the dict stays oldest first
            self._last_write[key] = loop.time()
            batch.started = True
            if self._batches.get(key) is batch:
                del self._batches[key]
            try:
                await self.writer.patch(key[0], key[1], {"pendingAlerts": dict(batch.entries)})
            except Exception as error:  # handed to every request of the batch, which decides
                batch.done.set_exception(error)
            else:
                batch.done.set_result(None)
        except asyncio.CancelledError:
            # The operator is stopping: no request waits for a write that will not come, and no
            # later alert joins this batch.
            if self._batches.get(key) is batch:
                del self._batches[key]
            batch.done.cancel()
            raise
        finally:
            if self._inflight.get(key) is batch:
                del self._inflight[key]
            unsettled = self._unsettled.get(key, set())
            unsettled.difference_update(batch.entries)
            if not unsettled:
                self._unsettled.pop(key, None)

    def _waiting(self, match: _Match) -> int:
        """Alerts of the session waiting for a capture. A session served here knows them; for
        one served elsewhere: those in its status as seen here, and those being written here
        (written ones the watch has not shown yet are missed: the limit is not exact there)."""
        if match.waiting is not None:
            return match.waiting()
        stored = match.status.get("pendingAlerts")
        if not isinstance(stored, Mapping):
            stored = {}
        count = sum(1 for value in stored.values() if value)
        unsettled = self._unsettled.get((match.namespace, match.name), set())
        return count + sum(1 for key in unsettled if key not in stored)

    def _matching(
        self,
        alert: Alert,
        standby: list[tuple[StandbyView, SessionSpec]],
        named: Mapping[tuple[str, str], PodInfo | None],
    ) -> list[_Match]:
        """The sessions whose trigger.alerts match the alert: those served here (their pods
        from the cache), then those that are not (a named pod as read from the API server)."""
        found = []
        for view in self.registry.views():
            matcher = view.spec.trigger.alerts
            if matcher is not None and matcher.matches(alert.labels):
                pods = alert_pods(alert, view.namespace, view.spec.selector, view.pods())
                found.append(_Match(view.namespace, view.name, pods, view.status(), view.waiting))
        for session, spec in standby:
            if spec.trigger.alerts is None or not spec.trigger.alerts.matches(alert.labels):
                continue
            pod = named.get((session.namespace, alert.labels.get("pod", "")))
            pods = alert_pods(alert, session.namespace, spec.selector, [pod] if pod else [])
            found.append(_Match(session.namespace, session.name, pods, session.status, None))
        return found

    async def _read_named_pods(
        self, alerts: Sequence[Alert], standby: list[tuple[StandbyView, SessionSpec]]
    ) -> dict[tuple[str, str], PodInfo | None]:
        """The pods that alerts name in namespaces of sessions not served here, each read once
        and a few at a time (a burst names many)."""
        wanted: set[tuple[str, str]] = set()
        for alert in alerts:
            pod = alert.labels.get("pod")
            for session, spec in standby:
                matcher = spec.trigger.alerts
                if (
                    pod is not None
                    and alert.labels.get("namespace", session.namespace) == session.namespace
                    and matcher is not None
                    and matcher.matches(alert.labels)
                ):
                    wanted.add((session.namespace, pod))
        slots = asyncio.Semaphore(POD_READS_AT_ONCE)

        async def read(namespace: str, pod: str) -> PodInfo | None:
            async with slots:
                return await self.find_pod(namespace, pod)

        keys = sorted(wanted)
        try:
            found = await asyncio.gather(*(read(ns, pod) for ns, pod in keys))
        except KubeError as error:  # answered 5xx: Alertmanager sends it again
            raise RecordingFailedError(str(error)) from None
        return dict(zip(keys, found, strict=True))

    def _forget_before(self, moment: float) -> None:
        """Drop the keys recorded before `moment`: the oldest come first (insertion order), so
        a notification costs what expired, not a pass over an hour of keys."""
        while self._recent:
            oldest = next(iter(self._recent))
            if self._recent[oldest] >= moment:
                break
            del self._recent[oldest]
        # Likewise the write times that space no write any more (else one per session ever
        # seen stays).
        spaced_until = asyncio.get_running_loop().time() - WRITE_SPACING_SECONDS
        while self._last_write:
            session = next(iter(self._last_write))
            if self._last_write[session] >= spaced_until:
                break
            del self._last_write[session]

    async def receive(self, notification: Notification) -> IntakeResult:
        """Record each firing alert as pending in the sessions it matches (or raise)."""
        now = time.monotonic()
        self._forget_before(now - RECENT_SECONDS)
        writes: dict[tuple[str, str], dict[str, Any]] = {}
        duplicates = unmatched = 0
        room: dict[tuple[str, str], int] = {}  # alerts each matched session may still take
        refused: dict[tuple[str, str], int] = {}
        received_at = format_time(datetime.datetime.now(datetime.UTC))
        standby = [
            (session, spec)
            for session in self.registry.standing_by()
            if (spec := session.parsed()) is not None and spec.trigger.alerts is not None
        ]
        named = await self._read_named_pods(notification.firing, standby)
        for alert in notification.firing:
            matched = False
            for found in self._matching(alert, standby, named):
                if found.pods == ():
                    continue
                matched = True
                seen = (found.namespace, found.name, alert.key)
                if seen in self._recent or _known(found.status, alert.key):
                    duplicates += 1
                    continue
                session = (found.namespace, found.name)
                if session not in room:
                    room[session] = PENDING_ALERTS_LIMIT - self._waiting(found)
                if room[session] <= 0:
                    refused[session] = refused.get(session, 0) + 1
                    continue
                room[session] -= 1
                entry = PendingAlert(alert.name, found.pods, received_at, alert.starts_at)
                writes.setdefault(session, {})[alert.key] = entry.render()
            unmatched += not matched
        recording = {
            session: self._record(*session, entries) for session, entries in writes.items()
        }
        # The sessions served here start capturing now, while their writes are under way: the
        # profile request does not wait for an API server round trip, and nothing of it is
        # published, nor is the alert answered, before the write lands.
        for session, written in recording.items():
            live = self.registry.get(*session)
            if live is not None:
                live.deliver(writes[session], written)
        outcomes = await asyncio.gather(
            *(asyncio.shield(written) for written in recording.values()), return_exceptions=True
        )
        recorded = failed = gone = 0
        failure: BaseException | None = None
        for (namespace, name), outcome in zip(recording, outcomes, strict=True):
            entries = writes[(namespace, name)]
            if isinstance(outcome, SessionGoneError):
                gone += len(entries)
                continue  # deleted since it was matched: nothing is owed to it
            if isinstance(outcome, BaseException):
                failed += len(entries)
                failure = failure or outcome
                continue
            recorded += len(entries)
            for key in entries:
                self._recent.pop((namespace, name, key), None)  # kept in time order
                self._recent[(namespace, name, key)] = now
        self._count(
            recorded=recorded,
            duplicate=duplicates,
            unmatched=unmatched,
            refused=sum(refused.values()),
            failed=failed,
            gone=gone,
        )
        if isinstance(failure, KubeError):
            raise RecordingFailedError(str(failure)) from None
        if failure is not None:
            raise failure
        if refused:
            # Those recorded stay recorded; Alertmanager's re-send finds them (duplicates).
            raise RecordingFailedError(
                "; ".join(
                    f"ProfilingSession {namespace}/{name} already holds {PENDING_ALERTS_LIMIT} "
                    f"alerts waiting for a capture, its limit, so {count} more were not "
                    "recorded (its captures are not keeping up with the alerts)"
                    for (namespace, name), count in sorted(refused.items())
                )
            )
        return IntakeResult(
            recorded=recorded,
            duplicates=duplicates,
            unmatched=unmatched,
            resolved=len(notification.alerts) - len(notification.firing),
        )

    def _count(self, **by_result: int) -> None:
        if self.metrics is None:
            return
        for result, count in by_result.items():
            if count:
                self.metrics.alerts.labels(result=result).inc(count)
