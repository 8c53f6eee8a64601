"""Driving one session: look at its pods and triggers, run captures, keep status true."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from spikeprof.adapters.kube import (
    ApiUnavailableError,
    KubeError,
    SessionGoneError,
    SessionStatusWriter,
)
from spikeprof.core import planner
from spikeprof.core import status as status_rules
from spikeprof.core.arming import parse_workload
from spikeprof.core.guards import apply_session_guards, expired
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.selector import LabelSelector
from spikeprof.core.spec import SessionSpec, SpecError, parse_spec
from spikeprof.services.alerts import SessionRegistry, SessionView
from spikeprof.services.arming import Armer, ArmingReport
from spikeprof.services.capture import CaptureJob, Capturer
from spikeprof.services.outputs import TICK_SECONDS, SessionOutputs
from spikeprof.services.status_outbox import StatusOutbox
from spikeprof.services.triggers import SpikeWatcher


@dataclass(frozen=True)
class AlertCandidate:
    """A pod an alert asks to capture, as the guards see it."""

    pod: str
    rule: str


PostEvent = Callable[[str, str, str], None]  # (type, reason, message)
Logger = logging.Logger | logging.LoggerAdapter[Any]


class StopFlag(Protocol):
    """True once the session's loop must end (kopf's DaemonStopped is one)."""

    def __bool__(self) -> bool: ...


def _changed(current: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in patch.items())


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
        writer: SessionStatusWriter,
        capturer: Capturer,
        version: str,
        pods_in_namespace: Callable[[], Iterable[PodInfo]],
        pods_version: Callable[[], int],
        post_event: PostEvent,
        spikes: SpikeWatcher,
        registry: SessionRegistry,
        outputs: SessionOutputs,
        armer: Armer,
        port_forward_missing: Callable[[str], Awaitable[list[str]]],
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
        # (next look, verbs missing on pods/portforward or None when not known)
        self._port_forward: tuple[float, list[str] | None] = (0.0, None)
        self._arming: tuple[tuple[int, bool], ArmingReport, float] | None = None
        self.outputs_due = 0.0  # monotonic time of the next upload/retention look
        self.finished: set[str] = set()
        self.finished_alerts: set[str] = set()
        self.alert_hints: dict[str, Any] = {}  # recorded by the receiver, maybe not yet watched
        self.wakeup = asyncio.Event()
        self.local: planner.Progress | None = None

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
                    await self.idle(poll_seconds)
        # Deleted: nothing is left to look at.
        except SessionGoneError:
            logger.info("The session was deleted; its daemon stops.")

    async def step(
        self,
        spec: Mapping[str, Any],
        meta: Mapping[str, Any],
        stored: Mapping[str, Any],
        now: datetime.datetime,
    ) -> bool:
        """Look once; return True when a capture ran (so the caller looks again at once)."""
        generation = int(meta.get("generation") or 0)
        # What the status will be once the API server has every write (it may be away).
        current = self.outbox.view(stored)
        try:
            parsed = parse_spec(spec)
        except SpecError as error:
            patch = status_rules.invalid_spec_patch(current, str(error), generation, now)
            if _changed(current, patch):
                await self.outbox.write(patch)
                self.post_event("Warning", "InvalidSpec", str(error))
            return False

        pods, reachable = self._select(parsed.selector)
        created = planner.parse_time(str(meta.get("creationTimestamp") or planner.format_time(now)))
        is_expired = expired(created, parsed.limits.expires_after, now)
        progress = self._progress(current)
        arming_patch, ready = await self._arm(parsed, pods, current, is_expired, generation, now)
        # Until armed, triggers wait (a capture would meet no endpoint); a capture already
        # decided before a restart still finishes.
        waiting = is_expired or not ready
        request = None
        if not waiting or progress.pending is not None:
            request = planner.next_capture(parsed, meta.get("annotations") or {}, progress, now)

        # Each part of the patch builds on the parts before it: they share `conditions`.
        patch = status_rules.observation_patch(
            {**current, **arming_patch},
            matched=len(pods),
            reachable=len(reachable),
            capturing=request is not None,
            selector=parsed.selector.describe(),
            generation=generation,
            now=now,
            is_expired=is_expired and progress.pending is None,
        )
        patch["conditions"] = status_rules.port_forward_conditions(
            patch["conditions"],
            access=parsed.target.access,
            missing=await self._port_forward_rights(parsed.target.access),
            namespace=self.namespace,
            generation=generation,
            now=now,
        )
        if "armedWorkloads" in arming_patch:
            patch["armedWorkloads"] = arming_patch["armedWorkloads"]
        if not ready and not is_expired and request is None:
            patch["phase"] = "Arming"
        self._register(parsed, stored)
        if request is None and not waiting:
            request = self._alert_request(parsed, current, reachable, now, patch)
        if request is None and not waiting:
            evaluation = await self.spikes.evaluate(
                namespace=self.namespace,
                spec=parsed,
                reachable=reachable,
                current={**current, **patch},
                generation=generation,
                now=now,
                monotonic=time.monotonic(),
            )
            if evaluation is not None:
                patch.update(evaluation.patch)
                for event in evaluation.events:
                    self.post_event(*event)
                request = evaluation.request
        if time.monotonic() >= self.outputs_due:
            self.outputs_due = time.monotonic() + TICK_SECONDS
            patch.update(await self.outputs.settle(parsed, {**current, **patch}, generation, now))
        if _changed(current, patch):
            await self.outbox.write(patch)
            current.update(patch)
        else:
            await self.outbox.flush()  # what waited for the API server, written once it answers
        if request is None:
            return False
        if request.pods is not None:
            chosen = set(request.pods)
            reachable = [p for p in reachable if p.name in chosen]
        await self._capture(parsed, request, progress, reachable, current, generation)
        return True

    async def _arm(
        self,
        parsed: SessionSpec,
        pods: list[PodInfo],
        current: Mapping[str, Any],
        is_expired: bool,
        generation: int,
        now: datetime.datetime,
    ) -> tuple[dict[str, Any], bool]:
        """Arm (or, once expired, disarm) the session's workloads: (status patch, ready)."""
        recorded = [parse_workload(r, self.namespace) for r in current.get("armedWorkloads") or ()]
        if is_expired or not parsed.target.enable_profiling:
            if not recorded:
                return {}, True
            # Expired, or arming turned off in the spec: put the workloads back now.
            restored = await self.armer.disarm(recorded)
            if restored:
                self.post_event(
                    "Normal", "Disarmed", f"Restored {', '.join(map(str, restored))} as they were."
                )
            return {"armedWorkloads": None}, True
        key = (self.pods_version(), parsed.target.dry_run)
        if self._arming is None or self._arming[0] != key or time.monotonic() > self._arming[2]:
            report = await self.armer.reconcile(pods, parsed.target, parsed.target.dry_run)
            self._arming = (key, report, time.monotonic() + TICK_SECONDS)
        report = self._arming[1]
        patch: dict[str, Any] = {
            "conditions": status_rules.set_condition(
                current.get("conditions") or (),
                type="ProfilingEnabled",
                status=report.armed,
                reason=report.reason,
                message=report.message,
                generation=generation,
                now=now,
            )
        }
        if not parsed.target.dry_run:
            known = sorted({*map(str, recorded), *map(str, report.workloads)})
            if known != sorted(current.get("armedWorkloads") or ()):
                patch["armedWorkloads"] = known
        return patch, report.armed

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
        """The selected pods and, sorted by name, those reachable; cached per pods version."""
        key = (self.pods_version(), selector)
        if self._selection is None or self._selection[0] != key:
            pods = [
                p for p in self.pods_in_namespace() if selector.matches(p.labels, p.annotations)
            ]
            reachable = sorted((p for p in pods if p.reachable), key=lambda p: p.name)
            self._selection = (key, pods, reachable)
        return self._selection[1], list(self._selection[2])

    def _register(self, parsed: SessionSpec, stored: Mapping[str, Any]) -> None:
        """Let the alert receiver see this session as it is now."""

        def selected() -> list[PodInfo]:
            return self._select(parsed.selector)[0]

        self.registry.register(
            SessionView(self.namespace, self.name, parsed, selected, lambda: stored, self._deliver)
        )

    def _deliver(self, entries: Mapping[str, Any]) -> None:
        self.alert_hints.update(entries)
        self.wakeup.set()

    async def idle(self, seconds: float) -> None:
        """Wait for the next look: `seconds`, or less when an alert arrives."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        self.wakeup.clear()

    def unregister(self) -> None:
        self.registry.unregister(self.namespace, self.name)

    def _alert_request(
        self,
        parsed: SessionSpec,
        current: Mapping[str, Any],
        reachable: list[PodInfo],
        now: datetime.datetime,
        patch: dict[str, Any],
    ) -> planner.CaptureRequest | None:
        """A capture for the alerts recorded as pending, with cooldowns and maxCaptures applied."""
        recorded = {**self.alert_hints, **(current.get("pendingAlerts") or {})}
        pending = {
            key: entry
            for key, entry in recorded.items()
            if entry and key not in self.finished_alerts
        }
        self.alert_hints = {k: v for k, v in self.alert_hints.items() if k in pending}
        if not pending:
            return None
        wanted: set[str] = set()
        for entry in pending.values():
            pods = entry.get("pods")
            wanted.update(pods if pods is not None else (p.name for p in reachable))
        names = ", ".join(sorted({str(e.get("alert")) for e in pending.values()}))
        candidates = [AlertCandidate(pod, f"alert {names}") for pod in sorted(wanted)]
        decision = apply_session_guards(candidates, limits=parsed.limits, status=current, now=now)
        for held in decision.suppressed:
            self.post_event(
                "Normal",
                "CaptureSuppressed",
                f"{held.rule.capitalize()} named pod {held.pod}, but no capture "
                f"({held.guard}): {held.message}.",
            )
        if decision.suppressed:
            patch.update(status_rules.suppression_patch(current, decision.suppressed, now))
        if not decision.allowed:
            # Nothing to capture: the alerts are answered (held back), not left pending.
            patch.update(status_rules.alerts_handled_patch(current, sorted(pending)))
            self.finished_alerts.update(pending)
            return None
        return planner.alert_capture(pending, [c.pod for c in decision.allowed], now)

    def _progress(self, current: Mapping[str, Any]) -> planner.Progress:
        stored = planner.progress_from_status(current)
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

    async def _capture(
        self,
        parsed: SessionSpec,
        request: planner.CaptureRequest,
        progress: planner.Progress,
        reachable: list[PodInfo],
        current: dict[str, Any],
        generation: int,
    ) -> None:
        # A full spool (the object store has been away) refuses new captures: the oldest
        # waiting ones are kept, and the request ends as a failed capture saying why.
        refusal = await self.outputs.refusal(parsed) if progress.pending is None else None
        if refusal is not None:
            outcome = CaptureOutcome(request, problem=refusal.rstrip("."))
        else:
            if progress.pending is None:
                # Durable before any profile is fetched: after a crash, this capture resumes.
                # While the API server is away it cannot be; the spike is captured anyway, and
                # the outbox records it, under the same id, once the API server answers.
                await self.outbox.write(status_rules.pending_patch(request))
                self.post_event(
                    "Normal",
                    "CaptureStarted",
                    f"Capture {request.id} started ({request.reason}) on {len(reachable)} pod(s).",
                )
            else:
                self.post_event(
                    "Normal",
                    "CaptureResumed",
                    f"Capture {request.id} resumed after an operator restart.",
                )
            job = CaptureJob(
                self.namespace,
                self.name,
                parsed,
                request,
                self.version,
                self._pod_exists,
                baseline_id=(
                    current.get("baselineCapture") if request.trigger != "baseline" else None
                ),
            )
            outcome = await self.capturer.run(job, reachable)
        done = planner.progress_after(progress, request)
        now = datetime.datetime.now(datetime.UTC)
        finished = status_rules.capture_done_patch(
            current, outcome, done, generation, now, parsed.limits.cooldown
        )
        # Out of Capturing in the same write that ends the capture, never after it.
        finished["phase"] = status_rules.phase_for(capturing=False, reachable=len(reachable))
        if parsed.object_store is not None and outcome.pods:
            # Until the next upload pass, the store does not hold this capture: say so in the
            # same write, so that no reader sees it finished and "every capture" uploaded.
            finished["conditions"] = status_rules.set_condition(
                finished["conditions"],
                type="ArtifactsUploaded",
                status=False,
                reason="Uploading",
                message=f"Capture {request.id} is on its way to {parsed.object_store.url}.",
                generation=generation,
                now=now,
            )
        await self.outbox.write(finished)
        self.finished.add(request.id)
        self.finished_alerts.update(request.alert_keys)
        self.local = done
        self.outputs_due = 0.0  # upload the new capture at the next look
        ok = outcome.result == "Succeeded"
        self.post_event(
            "Normal" if ok else "Warning",
            "Captured" if ok else f"Capture{outcome.result}",
            outcome.summary(),
        )
