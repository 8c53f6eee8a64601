"""Driving one session: look at its pods and triggers, run captures, keep status true."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spikeprof.adapters.kube import ApiUnavailableError, KubeError, SessionGoneError
from spikeprof.core import planner
from spikeprof.core import restarts as restart_rules
from spikeprof.core import status as status_rules
from spikeprof.core.arming import WorkloadRef, parse_workload
from spikeprof.core.guards import Suppression, apply_session_guards, expired
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.selector import LabelSelector
from spikeprof.core.session_status import PendingAlert, SessionStatus
from spikeprof.core.spec import SessionSpec, SpecError, TargetSpec, parse_spec
from spikeprof.core.status import MetricsReport, Verdict
from spikeprof.services.alerts import SessionRegistry, SessionView
from spikeprof.services.arming import ArmingReport
from spikeprof.services.capture import CaptureJob, Joining
from spikeprof.services.outputs import TICK_SECONDS
from spikeprof.services.ownership import NotOwnerError
from spikeprof.services.status_outbox import StatusOutbox, StatusPatcher
from spikeprof.services.triggers import SpikeWatcher


@dataclass(frozen=True)
class AlertCandidate:
    """A pod an alert asks to capture, as the guards see it."""

    pod: str
    rule: str


@dataclass(frozen=True)
class _Triggered:
    """What the alerts and thresholds came to in one look."""

    request: planner.CaptureRequest | None = None
    suppressions: tuple[Suppression, ...] = ()
    alerts_handled: tuple[str, ...] = ()  # answered without a capture
    metrics: MetricsReport | None = None


@dataclass(frozen=True)
class _Hint:
    """An alert the receiver is recording, and the write that records it (see _deliver)."""

    entry: Mapping[str, Any]
    written: asyncio.Future[None]

    def lost(self) -> bool:
        """The receiver could not record it (it answered 5xx; Alertmanager sends it again):
        not acted on, unless a capture took it meanwhile."""
        done = self.written
        return done.done() and (done.cancelled() or done.exception() is not None)


JOIN_SECONDS = 1.0  # how long after its start an alert capture takes alerts that arrive


@dataclass
class _Running:
    """A capture as it runs; its request and the status written for it grow as alerts join."""

    request: planner.CaptureRequest
    status: SessionStatus  # as written, or queued to be, for it
    writes: list[asyncio.Future[bool]] = field(default_factory=list)  # see StatusOutbox.queue
    commits: list[asyncio.Task[None]] = field(default_factory=list)  # its pods' (deferred)
    joining: Joining | None = None
    names: dict[str, str] = field(default_factory=dict)  # alert key -> name, of those answered

    def write(
        self,
        outbox: StatusOutbox,
        after: SessionStatus,
        alerts_recorded: Iterable[asyncio.Future[None]] = (),
    ) -> None:
        """Queue the write of `after`, behind the capture's earlier writes and the writes that
        record the alerts it was decided from (so that it never lands before them). Queued at
        once: alerts joining in a burst squash into one patch while the one ahead is written."""
        self.writes.append(outbox.queue(self.status.patch_to(after), alerts_recorded))
        outbox.flush_soon()
        self.status = after

    def alerts_for(self, pod: str) -> tuple[str, ...]:
        """The keys of the capture's alerts that asked for `pod` (one naming no pod asks for
        every selected pod)."""
        asked = []
        for key in self.request.alert_keys:
            alert = self.status.pending_alerts.get(key)
            if alert is not None and (alert.pods is None or pod in alert.pods):
                asked.append(key)
        return tuple(asked)

    async def recorded(self) -> None:
        """Once every write of the capture so far is done (raises what one raised)."""
        for write in list(self.writes):
            await asyncio.shield(write)


PostEvent = Callable[[str, str, str], None]  # (type, reason, message)
Logger = logging.Logger | logging.LoggerAdapter[Any]


class CaptureRunner(Protocol):
    """Runs one capture on the given pods (services.capture.Capturer), and on those that join
    it while it runs (job.joining), publishing none before job.recorded() returns."""

    async def run(self, job: CaptureJob, pods: Sequence[PodInfo]) -> CaptureOutcome: ...

    async def discard_leftovers(self, namespace: str, session: str) -> int: ...


class WorkloadArmer(Protocol):
    """Turns profiling on in the session's workloads and back off (services.arming.Armer)."""

    async def reconcile(
        self, pods: Sequence[PodInfo], target: TargetSpec, dry_run: bool
    ) -> ArmingReport: ...

    async def disarm(self, refs: Sequence[WorkloadRef]) -> list[WorkloadRef]: ...


class Outputs(Protocol):
    """Uploads, spool and retention of the session (services.outputs.SessionOutputs)."""

    async def settle(self, spec: SessionSpec, now: datetime.datetime) -> Verdict | None: ...

    async def refusal(self, spec: SessionSpec) -> str | None: ...


class Notifications(Protocol):
    """Tells the session's webhooks, in the background (services.notify.Notifier)."""

    @property
    def verdict(self) -> Verdict | None: ...

    def capture_ended(self, spec: SessionSpec, outcome: CaptureOutcome) -> None: ...

    def session_expired(self, spec: SessionSpec, status: SessionStatus) -> None: ...


class StopFlag(Protocol):
    """True once the session's loop must end (kopf's DaemonStopped is one)."""

    def __bool__(self) -> bool: ...


class SessionWorker:
    """State of one session's loop that must outlive a single look: what it already finished.

    The watch delivers our own status patches with a delay; remembering the finished captures
    keeps the loop from starting a trigger twice in that window.
    """

    def __init__(
        self,
        *,
        namespace: str,
        name: str,
        writer: StatusPatcher,
        capturer: CaptureRunner,
        version: str,
        pods_in_namespace: Callable[[], Iterable[PodInfo]],
        pods_version: Callable[[], int],
        post_event: PostEvent,
        spikes: SpikeWatcher,
        registry: SessionRegistry,
        outputs: Outputs,
        armer: WorkloadArmer,
        port_forward_missing: Callable[[str], Awaitable[list[str]]],
        notifier: Notifications,
        fence: Callable[[], None] = lambda: None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.outbox = StatusOutbox(writer, namespace, name)
        self.capturer = capturer
        self.version = version
        self.pods_in_namespace = pods_in_namespace
        self.pods_version = pods_version
        # (pods version, selector) -> (selected, reachable): at 10,000 pods, matching every
        # selector on every look costs more than the rest of the loop together.
        self._selection: tuple[tuple[int, LabelSelector], list[PodInfo], list[PodInfo]] | None = (
            None
        )
        self.post_event = post_event
        self.spikes = spikes
        self.registry = registry
        self.outputs = outputs
        self.armer = armer
        self.port_forward_missing = port_forward_missing
        self.notifier = notifier
        # Raises NotOwnerError once this replica may no longer act here (services.ownership).
        self.fence = fence
        # (next look, verbs missing on pods/portforward or None when not known)
        self._port_forward: tuple[float, list[str] | None] = (0.0, None)
        self._arming: tuple[tuple[int, bool], ArmingReport, float] | None = None
        # The pods version last scanned for restarts: restart counts change only with the pods.
        self._restarts_scanned: int | None = None
        self.outputs_due = 0.0  # monotonic time of the next upload/retention look
        self.finished: set[str] = set()
        self.finished_alerts: set[str] = set()
        self.hints: dict[str, _Hint] = {}  # being recorded by the receiver, maybe not watched yet
        self._pending_seen: Mapping[str, PendingAlert] = {}  # pendingAlerts at the last look
        self.wakeup = asyncio.Event()
        self.local: planner.Progress | None = None
        self._spec: tuple[int, SessionSpec] | None = None  # (generation, parsed)
        self._parsed_status: tuple[dict[str, Any], SessionStatus] | None = None  # (raw, parsed)
        # The write of the last capture's end, under way while the next look runs.
        self._ending: asyncio.Task[bool] | None = None

    async def serve(
        self,
        stopped: StopFlag,
        spec: Mapping[str, Any],
        meta: Mapping[str, Any],
        stored: Mapping[str, Any],
        poll_seconds: float,
        logger: Logger,
    ) -> None:
        """Look again and again until stopped or the session is deleted.

        `spec`, `meta` and `stored` are live views (kopf's): each look sees the latest watch event.
        """
        # A capture that another process (or an earlier loop here) staged and could not record
        # as started is never resumed: its staging is garbage. Nobody else acts here now (the
        # namespace is this replica's), and a capture that was recorded is staged again anew.
        swept = await self.capturer.discard_leftovers(self.namespace, self.name)
        if swept:
            logger.info("Removed %d staging directory(ies) left by an earlier attempt.", swept)
        try:
            while not stopped:
                try:
                    captured = await self.step(
                        spec, meta, stored, datetime.datetime.now(datetime.UTC)
                    )
                # The API server is away: the loop (and what it remembers) waits for it, not
                # kopf's restart of a failed daemon a minute later.
                except ApiUnavailableError as error:
                    logger.warning("The session waits for the API server: %s", error)
                    captured = False
                if not captured:
                    await self.idle(self.seconds_to_next_look(poll_seconds))
        # Deleted: nothing is left to look at.
        except SessionGoneError:
            logger.info("The session was deleted; its daemon stops.")
        # Leadership or the namespace's shard moved: the new owner goes on from status.
        except NotOwnerError as error:
            logger.info("The session stops here: %s.", error)
        finally:
            # The last capture's end: written before the loop lets go, if it can be.
            with contextlib.suppress(Exception):
                await self.ended()

    async def ended(self) -> None:
        """Once the last capture's end is written (raises what its write raised)."""
        ending, self._ending = self._ending, None
        if ending is not None:
            await ending

    async def step(
        self,
        spec: Mapping[str, Any],
        meta: Mapping[str, Any],
        stored: Mapping[str, Any],
        now: datetime.datetime,
    ) -> bool:
        """Look once: gather the facts, decide the next status, write it; then run the capture
        decided, if any. True when a capture ran (so the caller looks again at once)."""
        if self._ending is not None and self._ending.done():
            await self.ended()  # the session is gone, say, or another replica owns it now
        generation = int(meta.get("generation") or 0)
        current = self._status(stored)
        try:
            parsed = self._parsed(spec, generation)
        except SpecError as error:  # said in status and an event, until the spec is fixed
            failed = status_rules.invalid_spec(current, str(error), generation, now)
            if await self._write(current, failed):
                self.post_event("Warning", "InvalidSpec", str(error))
            return False
        look, request, progress, reachable = await self._gather(
            parsed, meta, current, stored, generation, now
        )
        decided = status_rules.next_status(current, look)
        written = current
        if request is None or progress.pending is not None:
            await self._write(current, decided)
            written = decided
        # else: a new capture; what the look changed goes out with its start, in one write.
        for restart in look.restarts.found if look.restarts is not None else ():
            self.post_event(
                "Warning", "ContainerRestarted", restart_rules.event_message(restart, now)
            )
        # Told once, as the phase turns Expired (stored, so a restarted operator does not
        # tell it again).
        if decided.phase == "Expired" and current.phase != "Expired":
            self.notifier.session_expired(parsed, decided)
        if request is None:
            return False
        await self._capture(
            parsed, request, progress, reachable, written, decided, generation, stored
        )
        return True

    def _parsed(self, spec: Mapping[str, Any], generation: int) -> SessionSpec:
        """The spec parsed once per generation (the API server bumps it on every spec change):
        parsing it is a fixed cost of every look, and looks come with every alert."""
        cached = self._spec
        if cached is not None and generation and cached[0] == generation:
            return cached[1]
        parsed = parse_spec(spec)
        self._spec = (generation, parsed)
        return parsed

    async def _gather(
        self,
        parsed: SessionSpec,
        meta: Mapping[str, Any],
        current: SessionStatus,
        stored: Mapping[str, Any],
        generation: int,
        now: datetime.datetime,
    ) -> tuple[status_rules.Look, planner.CaptureRequest | None, planner.Progress, list[PodInfo]]:
        """What one look finds: pods, arming, triggers, uploads; and the capture to run."""
        pods, reachable = self._select(parsed.selector)
        created = planner.parse_time(str(meta.get("creationTimestamp") or planner.format_time(now)))
        is_expired = expired(created, parsed.limits.expires_after, now)
        progress = self._progress(current)
        arming = await self._arm(parsed, pods, current, is_expired)
        # Until armed, triggers wait (a capture would meet no endpoint); a capture already
        # decided before a restart still finishes.
        waiting = is_expired or not arming.ready
        planned = None
        if not waiting or progress.pending is not None:
            planned = planner.next_capture(parsed, meta.get("annotations") or {}, progress, now)
        missing = await self._port_forward_rights(parsed.target.access)
        self._register(parsed, stored)
        findings, restarted = None, _Triggered()
        if not is_expired:
            # One capture at a time: restarts capture when nothing else is decided.
            free = planned is None and not waiting
            findings, restarted = self._restarts(
                parsed, current, pods, reachable, created, now, capture=free
            )
        triggered = _Triggered()
        if planned is None and not waiting:
            triggered = await self._triggers(parsed, current, reachable, now, restarted)
        upload = None
        if time.monotonic() >= self.outputs_due:
            self.outputs_due = time.monotonic() + TICK_SECONDS
            upload = await self.outputs.settle(parsed, now)
        look = status_rules.Look(
            generation=generation,
            now=now,
            namespace=self.namespace,
            selector=parsed.selector.describe(),
            matched=len(pods),
            reachable=len(reachable),
            capturing=planned is not None,
            expired=is_expired and progress.pending is None,
            arming=arming,
            access=parsed.target.access,
            port_forward_missing=missing,
            suppressions=triggered.suppressions,
            alerts_handled=triggered.alerts_handled,
            metrics=triggered.metrics,
            upload=upload,
            notifying=bool(parsed.notify),
            notifications=self.notifier.verdict,
            restarts=findings,
        )
        request = planned or triggered.request
        if request is not None and request.pods is not None:
            chosen = set(request.pods)
            reachable = [p for p in reachable if p.name in chosen]
        return look, request, progress, reachable

    async def _triggers(
        self,
        parsed: SessionSpec,
        current: SessionStatus,
        reachable: list[PodInfo],
        now: datetime.datetime,
        restarted: _Triggered,
    ) -> _Triggered:
        """Pending alerts first; then restarted containers due; then the thresholds."""
        alerts = self._alert_request(parsed, current, reachable, now)
        if alerts.request is not None:
            return alerts
        if restarted.request is not None:
            return dataclasses.replace(
                restarted,
                suppressions=(*alerts.suppressions, *restarted.suppressions),
                alerts_handled=alerts.alerts_handled,
            )
        alerts = dataclasses.replace(
            alerts, suppressions=(*alerts.suppressions, *restarted.suppressions)
        )
        evaluation = await self.spikes.evaluate(
            namespace=self.namespace,
            spec=parsed,
            reachable=reachable,
            current=current,
            now=now,
            monotonic=time.monotonic(),
        )
        if evaluation is None:
            return alerts
        for event in evaluation.events:
            self.post_event(*event)
        return _Triggered(
            evaluation.request,
            (*alerts.suppressions, *evaluation.suppressed),
            alerts.alerts_handled,
            evaluation.report,
        )

    def _restarts(
        self,
        parsed: SessionSpec,
        current: SessionStatus,
        pods: list[PodInfo],
        reachable: list[PodInfo],
        created: datetime.datetime,
        now: datetime.datetime,
        *,
        capture: bool,
    ) -> tuple[restart_rules.RestartFindings, _Triggered]:
        """Containers that restarted since the last look; and, with trigger.onRestart, a
        capture of those whose warm-up is over, cooldown and maxCaptures applied.

        `capture`: no other capture is decided in this look (one runs at a time).
        """
        version = self.pods_version()
        if version == self._restarts_scanned:
            findings = restart_rules.RestartFindings(current.restarts_seen)
        else:
            findings = restart_rules.scan(
                current.restarts_seen,
                pods,
                session_created=created,
                now=now,
                on_restart=parsed.trigger.on_restart,
                recent_captures=current.recent_captures,
            )
            self._restarts_scanned = version
        wanted = parsed.trigger.on_restart is not None
        ripe, given_up = restart_rules.due(current.restarts, reachable, pods, now, wanted=wanted)
        settled = dict(given_up)
        if not capture or not ripe:
            return dataclasses.replace(findings, settled=settled), _Triggered()
        candidates = [AlertCandidate(pod, "onRestart") for pod in sorted({r.pod for r in ripe})]
        decision = apply_session_guards(candidates, limits=parsed.limits, status=current, now=now)
        for held in decision.suppressed:
            self.post_event(
                "Normal",
                "CaptureSuppressed",
                f"Container restart in pod {held.pod} asked for a capture, but no capture "
                f"({held.guard}): {held.message}.",
            )
            for record in ripe:
                if record.pod == held.pod:
                    settled[record.key] = f"{held.guard}: {held.message}"
        allowed = {c.pod for c in decision.allowed}
        request = None
        if allowed:
            chosen = [r for r in ripe if r.pod in allowed]
            request = restart_rules.restart_capture(chosen, now)
        return dataclasses.replace(findings, settled=settled), _Triggered(
            request, decision.suppressed
        )

    def _status(self, stored: Mapping[str, Any]) -> SessionStatus:
        """The status as it will be once the API server has every write (it may be away), with
        the alerts the receiver recorded that the watch has not delivered yet."""
        raw = self.outbox.view(stored)
        # Parsed again only when it changed: most looks find the status they left.
        if self._parsed_status is None or self._parsed_status[0] != raw:
            self._parsed_status = (raw, SessionStatus.parse(raw))
        current = self._parsed_status[1]
        hints = {
            key: PendingAlert.parse(hint.entry)
            for key, hint in self.hints.items()
            if hint.entry and not hint.lost()
        }
        if hints:
            current = dataclasses.replace(
                current, pending_alerts={**hints, **current.pending_alerts}
            )
        self._pending_seen = current.pending_alerts
        return current

    def waiting_alerts(self) -> int:
        """Alerts in status, or on their way there, that no capture has answered: those pending
        at the last look and those delivered since (the receiver's limit per session)."""
        return len((self._pending_seen.keys() | self.hints.keys()) - self.finished_alerts)

    async def _write(self, current: SessionStatus, after: SessionStatus) -> bool:
        """Write what changed (True), or else what waited for the API server (False)."""
        patch = current.patch_to(after)
        if patch:
            self.outbox.queue(patch, self._hints_recorded())
        # A flush under way (the last capture's end, waiting for its pods to be published)
        # writes this one too: the look goes on, and an alert that comes meanwhile starts its
        # capture at once. Its errors come back from that flush (see ended) or the next one.
        if not self.outbox.flushing:
            # What waited for the API server too, written once it answers.
            await self.outbox.flush()
        return bool(patch)

    async def _arm(
        self,
        parsed: SessionSpec,
        pods: list[PodInfo],
        current: SessionStatus,
        is_expired: bool,
    ) -> status_rules.Arming:
        """Arm (or, once expired, disarm) the session's workloads."""
        recorded = [parse_workload(r, self.namespace) for r in current.armed_workloads or ()]
        if is_expired or not parsed.target.enable_profiling:
            if not recorded:
                return status_rules.Arming(ready=True)
            # Expired, or arming turned off in the spec: put the workloads back now.
            restored = await self.armer.disarm(recorded)
            if restored:
                self.post_event(
                    "Normal", "Disarmed", f"Restored {', '.join(map(str, restored))} as they were."
                )
            return status_rules.Arming(ready=True, disarmed=True)
        key = (self.pods_version(), parsed.target.dry_run)
        if self._arming is None or self._arming[0] != key or time.monotonic() > self._arming[2]:
            report = await self.armer.reconcile(pods, parsed.target, parsed.target.dry_run)
            self._arming = (key, report, time.monotonic() + TICK_SECONDS)
        report = self._arming[1]
        known: tuple[str, ...] = ()
        if not parsed.target.dry_run:
            known = tuple(sorted({*map(str, recorded), *map(str, report.workloads)}))
        return status_rules.Arming(
            ready=report.armed,
            profiling=status_rules.Verdict(report.armed, report.reason, report.message),
            workloads=known,
        )

    async def _port_forward_rights(self, access: str) -> list[str] | None:
        """Asked of the API server every TICK_SECONDS while the session may port-forward."""
        if access == "direct":
            return None
        due, answer = self._port_forward
        if time.monotonic() >= due:
            try:
                answer = await self.port_forward_missing(self.namespace)
            except KubeError:
                answer = None  # unknown: the condition stays as it was, asked again next tick
            self._port_forward = (time.monotonic() + TICK_SECONDS, answer)
        return answer

    def _select(self, selector: LabelSelector) -> tuple[list[PodInfo], list[PodInfo]]:
        """The selected pods and, sorted by name, those reachable; cached per pods version.

        On a new version only the pods whose records changed are matched again: the pod cache
        replaces a pod's record when the pod changes, so a record selected last time that is
        still there is the same object (kept alive by the previous selection, so its id is
        not reused), and the same selector selects it again.
        """
        key = (self.pods_version(), selector)
        previous = self._selection
        if previous is None or previous[0] != key:
            same = previous is not None and previous[0][1] == selector
            kept = set(map(id, previous[1])) if previous is not None and same else set()
            pods = [
                p
                for p in self.pods_in_namespace()
                if id(p) in kept or selector.matches(p.labels, p.annotations, p.name)
            ]
            reachable = sorted((p for p in pods if p.reachable), key=lambda p: p.name)
            previous = self._selection = (key, pods, reachable)
        return previous[1], list(previous[2])

    def _register(self, parsed: SessionSpec, stored: Mapping[str, Any]) -> None:
        """Let the alert receiver see this session as it is now."""

        def selected() -> list[PodInfo]:
            return self._select(parsed.selector)[0]

        self.registry.register(
            SessionView(
                self.namespace,
                self.name,
                parsed,
                selected,
                lambda: stored,
                self._deliver,
                self.waiting_alerts,
            )
        )

    def _deliver(self, entries: Mapping[str, Any], written: asyncio.Future[None]) -> None:
        """Alerts the receiver is recording: the loop acts on them at once, and every status
        write it computes from them waits for `written` (see _hints_recorded)."""
        self.hints.update((key, _Hint(entry, written)) for key, entry in entries.items())
        self.wakeup.set()

    def _hints_recorded(self, keys: Iterable[str] | None = None) -> set[asyncio.Future[None]]:
        """The receiver's writes still under way (of `keys`, or all). A status write computed
        from a view with their alerts waits for them: landing first, its removal of an answered
        alert from pendingAlerts would be undone by the receiver's write, which adds it."""
        chosen = self.hints.keys() if keys is None else keys
        return {
            hint.written
            for key in chosen
            if (hint := self.hints.get(key)) is not None and not hint.written.done()
        }

    def seconds_to_next_look(self, poll_seconds: float) -> float:
        """Until the next look: the poll interval, or less when a threshold evaluation falls due
        before it, so that thresholds are evaluated every trigger.interval, not up to a poll
        later (alerts wake the loop themselves)."""
        due = self.spikes.next_at - time.monotonic()
        return min(poll_seconds, due) if due > 0 else poll_seconds

    async def idle(self, seconds: float) -> None:
        """Wait for the next look: `seconds`, or less when an alert arrives."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # no task per look, as wait_for makes
                await self.wakeup.wait()
        self.wakeup.clear()

    def unregister(self) -> None:
        self.registry.unregister(self.namespace, self.name)

    def _unanswered(self, current: SessionStatus) -> dict[str, PendingAlert]:
        """The pending alerts no capture has answered. One also in alertsHandled was answered
        already: a receiver write under way when its answer landed (the same alert sent twice
        at once) put it back. A worker started since (a restart, another replica) would
        capture it again; this one knows it from finished_alerts too."""
        handled = set(current.alerts_handled)
        return {
            key: alert
            for key, alert in current.pending_alerts.items()
            if key not in self.finished_alerts and key not in handled
        }

    def _alert_request(
        self,
        parsed: SessionSpec,
        current: SessionStatus,
        reachable: list[PodInfo],
        now: datetime.datetime,
    ) -> _Triggered:
        """A capture for the alerts recorded as pending, with cooldowns and maxCaptures applied."""
        pending = self._unanswered(current)
        self.hints = {k: v for k, v in self.hints.items() if k in pending}
        if not pending:
            return _Triggered()
        wanted: set[str] = set()
        for alert in pending.values():
            wanted.update(alert.pods if alert.pods is not None else (p.name for p in reachable))
        names = ", ".join(sorted({alert.alert for alert in pending.values()}))
        candidates = [AlertCandidate(pod, f"alert {names}") for pod in sorted(wanted)]
        decision = apply_session_guards(candidates, limits=parsed.limits, status=current, now=now)
        for held in decision.suppressed:
            self.post_event(
                "Normal",
                "CaptureSuppressed",
                f"{held.rule.capitalize()} named pod {held.pod}, but no capture "
                f"({held.guard}): {held.message}.",
            )
        if not decision.allowed:
            # Nothing to capture: the alerts are answered (held back), not left pending.
            self.finished_alerts.update(pending)
            return _Triggered(None, decision.suppressed, tuple(sorted(pending)))
        request = planner.alert_capture(
            {key: alert.alert for key, alert in pending.items()},
            [c.pod for c in decision.allowed],
            now,
        )
        return _Triggered(request, decision.suppressed)

    def _progress(self, current: SessionStatus) -> planner.Progress:
        stored = current.progress()
        if self.local is None:
            return stored
        if stored.pending is not None and stored.pending.id not in self.finished:
            return stored  # a capture another look decided and this process has not run
        return planner.Progress(
            immediate_done=stored.immediate_done or self.local.immediate_done,
            capture_now_handled=self.local.capture_now_handled or stored.capture_now_handled,
            pending=None,
            baseline_done=stored.baseline_done or self.local.baseline_done,
        )

    def _pod_exists(self, pod: PodInfo) -> bool:
        return any(p.uid == pod.uid and not p.deleting for p in self.pods_in_namespace())

    def _pod_now(self, pod: PodInfo) -> PodInfo | None:
        return next((p for p in self.pods_in_namespace() if p.uid == pod.uid), None)

    async def _capture(
        self,
        parsed: SessionSpec,
        request: planner.CaptureRequest,
        progress: planner.Progress,
        reachable: list[PodInfo],
        written: SessionStatus,
        current: SessionStatus,
        generation: int,
        stored: Mapping[str, Any],
    ) -> None:
        """Run `request` (gather), decide the status it leaves, write that and say so.

        `written` is the status as the outbox has it, `current` as the look decided it.
        """
        # A full spool (the object store has been away) refuses new captures: the oldest
        # waiting ones are kept, and the request ends as a failed capture saying why.
        refusal = await self.outputs.refusal(parsed) if progress.pending is None else None
        commits: list[asyncio.Task[None]] = []
        if refusal is not None:
            outcome = CaptureOutcome(request, problem=refusal.rstrip("."))
        else:
            running = _Running(request, written)
            if progress.pending is None:
                self._start(running, current, len(reachable))
            else:
                self.post_event(
                    "Normal",
                    "CaptureResumed",
                    f"Capture {request.id} resumed after an operator restart.",
                )
            joiner = None
            if running.joining is not None:
                joiner = asyncio.create_task(self._join_alerts(parsed, running, stored))
            try:
                outcome = await self._run(parsed, request, reachable, current, running)
            finally:
                if joiner is not None:
                    joiner.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await joiner
            commits = running.commits
            # As alerts joined it: the request answers them too, and status says so.
            request = running.request
            outcome = dataclasses.replace(outcome, request=request)
            current = written = running.status
        done = planner.progress_after(progress, request)
        uploading = parsed.object_store.url if parsed.object_store and outcome.pods else None
        finished = status_rules.capture_finished(
            current,
            outcome,
            done,
            generation=generation,
            now=datetime.datetime.now(datetime.UTC),
            cooldown=parsed.limits.cooldown,
            reachable=len(reachable),
            uploading_to=uploading,
        )
        # The end is written once every pod is published (the outbox holds it until their
        # commits succeed, behind the capture's own writes), while the next look runs: an
        # alert that came after the join window closed starts its capture without waiting for
        # those status round trips. Queued now, so that the next look's view has it (a patch
        # computed from a view without it would be computed against a capture that is over).
        self.outbox.queue(written.patch_to(finished), required=commits)
        self._ending = asyncio.create_task(self._end(parsed, outcome))
        self.finished.add(request.id)
        self.finished_alerts.update(request.alert_keys)
        self.local = done

    async def _end(self, parsed: SessionSpec, outcome: CaptureOutcome) -> bool:
        """Write the capture's end (queued), then say it: the event and the webhooks come
        once its artifacts are published and status says so."""
        written = await self.outbox.flush()
        self.outputs_due = 0.0  # upload the new capture at the next look
        ok = outcome.result == "Succeeded"
        self.post_event(
            "Normal" if ok else "Warning",
            "Captured" if ok else f"Capture{outcome.result}",
            outcome.summary(),
        )
        # In the background: the next capture never waits for a webhook.
        self.notifier.capture_ended(parsed, outcome)
        return written

    def _start(self, running: _Running, current: SessionStatus, pods: int) -> None:
        """Record the capture as pending (with what the look changed), while it starts.

        The write runs beside the first profile requests, so that a spike or an alert meets a
        profile request at once, not a status round trip later; no pod's artifacts are published
        before it is durable (CaptureJob.recorded). A crash in between publishes nothing, and
        what asked for the capture is still there to ask again: the alert stays in
        pendingAlerts, the spike is evaluated again. Once recorded, a crash resumes the capture
        under its id. While the API server is away it cannot be recorded; the spike is captured
        anyway, and the outbox records it, under the same id, once the API server answers.
        """
        request = running.request
        running.write(
            self.outbox,
            status_rules.capture_started(current, request),
            self._hints_recorded(request.alert_keys),
        )
        self.post_event(
            "Normal",
            "CaptureStarted",
            f"Capture {request.id} started ({request.reason}) on {pods} pod(s).",
        )
        # A capture of every selected pod (an alert that names none) has no pod left to join.
        if request.trigger == "alert" and request.pods is not None:
            running.joining = Joining()
            running.names = {
                key: current.pending_alerts[key].alert
                for key in request.alert_keys
                if key in current.pending_alerts
            }

    async def _join_alerts(
        self, parsed: SessionSpec, running: _Running, stored: Mapping[str, Any]
    ) -> None:
        """Alerts recorded while an alert capture runs join it, so that they do not wait for
        its end: those whose pods are all reachable, not in the capture yet, and let through by
        the guards. Any other alert waits for the next look, which answers it as usual.

        An alert for a pod the capture has already taken closes the window: the capture ends
        with its pods in flight, and the next one, started as soon as they are taken, takes it
        (kept open, a steady stream of alerts would make that alert wait the whole window)."""
        assert running.joining is not None
        try:
            await self._take_joining(parsed, running, stored)
        finally:
            running.joining.close()  # whatever happened here, the capture must end

    async def _take_joining(
        self, parsed: SessionSpec, running: _Running, stored: Mapping[str, Any]
    ) -> None:
        assert running.joining is not None
        closes = time.monotonic() + JOIN_SECONDS
        while running.joining.open:
            try:
                async with asyncio.timeout(closes - time.monotonic()):
                    await self.wakeup.wait()
            # Past its window the capture ends with what it has: its alerts leave pendingAlerts
            # (each status write costs the API server more as that map grows), and later
            # alerts wait for the next capture, a few milliseconds later.
            except TimeoutError:
                return
            self.wakeup.clear()
            current = self._status(stored)
            in_capture = set(running.request.pods or ())
            reachable = {pod.name: pod for pod in self._select(parsed.selector)[1]}
            waiting = {
                key: alert
                for key, alert in self._unanswered(current).items()
                if key not in running.request.alert_keys
            }
            if any(not in_capture.isdisjoint(alert.pods or ()) for alert in waiting.values()):
                return  # closed by _join_alerts
            joining = {
                key: alert
                for key, alert in waiting.items()
                if alert.pods and reachable.keys() >= set(alert.pods)
            }
            if not joining:
                continue
            wanted = sorted({pod for alert in joining.values() for pod in alert.pods or ()})
            now = datetime.datetime.now(datetime.UTC)
            candidates = [AlertCandidate(pod, "alert") for pod in wanted]
            decision = apply_session_guards(
                candidates, limits=parsed.limits, status=current, now=now
            )
            if decision.suppressed or not running.joining.open:
                continue
            names = {**running.names, **{key: a.alert for key, a in joining.items()}}
            pods = tuple(sorted(in_capture.union(wanted)))
            grown = dataclasses.replace(
                running.request,
                reason=planner.alert_capture(names, pods, now).reason,
                pods=pods,
                alert_keys=tuple(sorted({*running.request.alert_keys, *joining})),
            )
            # In one step of the event loop: the capture is still open, the write that records
            # the grown request is queued before the pods, and their artifacts wait for it.
            running.request, running.names = grown, names
            # The intake wrote the joined alerts to status: the capture's end removes them there.
            running.status = dataclasses.replace(
                running.status, pending_alerts={**running.status.pending_alerts, **joining}
            )
            running.write(
                self.outbox,
                status_rules.capture_started(running.status, grown),
                self._hints_recorded(joining),
            )
            running.joining.add([reachable[pod] for pod in wanted])

    async def _run(
        self,
        parsed: SessionSpec,
        request: planner.CaptureRequest,
        reachable: list[PodInfo],
        current: SessionStatus,
        running: _Running,
    ) -> CaptureOutcome:
        job = CaptureJob(
            self.namespace,
            self.name,
            parsed,
            request,
            self.version,
            self._pod_exists,
            baseline_id=current.baseline_capture if request.trigger != "baseline" else None,
            pod_now=self._pod_now,
            fence=self.fence,
            recorded=running.recorded,
            joining=running.joining,
            alerts_for=running.alerts_for,
            commits=running.commits,
        )
        return await self.capturer.run(job, reachable)
