"""The session's status as people read it: phase, conditions, counters, recent captures.

One pure function, `next_status`, takes the status as it is and what a look at the session
found (`Look`: pods, arming, alerts, metrics, uploads), and returns the whole next status; the
service writes the difference once. Captures starting and finishing have their own two.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from spikeprof.core import restarts as restart_rules
from spikeprof.core.guards import Suppression
from spikeprof.core.observations import ObservationBatch
from spikeprof.core.planner import CaptureRequest, Progress, format_time, parse_time
from spikeprof.core.restarts import RestartFindings
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.rules import RuleProblem
from spikeprof.core.session_status import (
    CaptureCounts,
    Condition,
    LastSuppression,
    SessionStatus,
    Suppressed,
    Targets,
)

RECENT_CAPTURES = 10
HANDLED_ALERTS = 100  # alert keys remembered, so that Alertmanager's re-sends capture once


@dataclass(frozen=True)
class Verdict:
    """A condition's status, reason and message as some part of the session found them."""

    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Arming:
    """What arming (or disarming) the session's workloads came to in this look."""

    ready: bool
    """Triggers may fire: every pod serves profiles, or the session arms nothing."""
    profiling: Verdict | None = None
    """The ProfilingEnabled condition; None leaves it as it is."""
    workloads: tuple[str, ...] = ()
    """Workloads armed by the session, as now known; empty leaves armedWorkloads as it is."""
    disarmed: bool = False
    """Every armed workload was given back: armedWorkloads goes."""


@dataclass(frozen=True)
class MetricsReport:
    """One evaluation of the session's thresholds: what the metric source gave, or its error."""

    source: str
    batch: ObservationBatch | None
    error: str | None = None
    problems: Sequence[RuleProblem] = ()


@dataclass(frozen=True)
class Look:
    """The facts one look at a session gathered; `next_status` decides from them alone."""

    generation: int
    now: datetime.datetime
    namespace: str
    selector: str  # as people read it
    matched: int
    reachable: int
    capturing: bool  # the planner's capture (pending, immediate, capture-now) runs now
    expired: bool  # past limits.expiresAfter with no capture left to finish
    arming: Arming
    access: str  # spec.target.access
    port_forward_missing: Sequence[str] | None  # verbs lacked on pods/portforward; None: unknown
    suppressions: Sequence[Suppression] = ()  # captures the guards held back, in order
    alerts_handled: Sequence[str] = ()  # alert keys answered without a capture
    metrics: MetricsReport | None = None  # None: no evaluation was due
    upload: Verdict | None = None  # None: uploads were not looked at
    notifying: bool = False  # spec.notify lists webhooks; without any, no NotificationsDelivered
    notifications: Verdict | None = None  # the latest delivery's; None: none finished yet
    restarts: RestartFindings | None = None  # None: restarts were not looked at


def next_status(current: SessionStatus, look: Look) -> SessionStatus:
    """The whole status after one look (equal to `current` when nothing changed)."""
    conditions = _targets_conditions(current.conditions, look)
    if look.arming.profiling is not None:
        conditions = _set(conditions, "ProfilingEnabled", look.arming.profiling, look)
    conditions = port_forward_conditions(
        conditions,
        access=look.access,
        missing=look.port_forward_missing,
        namespace=look.namespace,
        generation=look.generation,
        now=look.now,
    )
    if look.metrics is not None:
        conditions = _metrics_conditions(conditions, look.metrics, look)
    if look.upload is not None:
        conditions = _set(conditions, "ArtifactsUploaded", look.upload, look)
    if not look.notifying:
        conditions = tuple(c for c in conditions if c.type != "NotificationsDelivered")
    elif look.notifications is not None:
        conditions = _set(conditions, "NotificationsDelivered", look.notifications, look)
    phase = phase_for(capturing=look.capturing, reachable=look.reachable, is_expired=look.expired)
    if not look.arming.ready and not look.capturing:
        phase = "Arming"
    armed = current.armed_workloads
    if look.arming.disarmed:
        armed = None
    elif look.arming.workloads:
        armed = look.arming.workloads
    if look.restarts is not None:
        current = dataclasses.replace(
            current,
            restarts_seen=dict(look.restarts.seen),
            restarts=restart_rules.recorded(current.restarts, look.restarts),
        )
    return dataclasses.replace(
        _suppressed(_alerts_handled(current, look.alerts_handled), look.suppressions, look.now),
        phase=phase,
        observed_generation=look.generation,
        targets=Targets(look.matched, look.reachable),
        conditions=conditions,
        armed_workloads=armed,
    )


def invalid_spec(
    current: SessionStatus, message: str, generation: int, now: datetime.datetime
) -> SessionStatus:
    ready = Verdict(False, "InvalidSpec", message)
    return dataclasses.replace(
        current,
        phase="Failed",
        observed_generation=generation,
        conditions=set_condition(
            current.conditions, "Ready", ready, generation=generation, now=now
        ),
    )


def capture_started(current: SessionStatus, request: CaptureRequest) -> SessionStatus:
    """Recorded before any profile is fetched, so that a capture resumes after a crash."""
    return dataclasses.replace(current, phase="Capturing", pending_capture=request)


def capture_finished(
    current: SessionStatus,
    outcome: CaptureOutcome,
    progress: Progress,
    *,
    generation: int,
    now: datetime.datetime,
    cooldown: float,
    reachable: int,
    uploading_to: str | None,
) -> SessionStatus:
    """Counters, lastCapture, recentCaptures and the consumed trigger, out of Capturing.

    `uploading_to`: the object store the capture is on its way to, if any. Until the next
    upload pass the store does not hold it; the same write says so, so that no reader sees it
    finished and "every capture" uploaded.
    """
    entry = outcome.to_status()
    recent = [
        outcome.to_recent_status(),
        *(c for c in current.recent_captures if c.get("id") != entry["id"]),
    ]
    last = Verdict(outcome.result == "Succeeded", outcome.result, outcome.summary())
    conditions = set_condition(
        current.conditions, "LastCaptureSucceeded", last, generation=generation, now=now
    )
    if uploading_to is not None:
        uploading = Verdict(
            False, "Uploading", f"Capture {outcome.request.id} is on its way to {uploading_to}."
        )
        conditions = set_condition(
            conditions, "ArtifactsUploaded", uploading, generation=generation, now=now
        )
    finished = _alerts_handled(current, outcome.request.alert_keys)
    if outcome.request.restarts:
        keys = [restart_rules.RestartRecord.parse(r).key for r in outcome.request.restarts]
        restarts = restart_rules.captured(finished.restarts, keys, outcome.request.id)
        finished = dataclasses.replace(finished, restarts=restarts)
    return dataclasses.replace(
        finished,
        # Out of Capturing in the same write that ends the capture, never after it.
        phase=phase_for(capturing=False, reachable=reachable),
        baseline_capture=(
            outcome.request.id
            if outcome.request.trigger == "baseline"
            else current.baseline_capture
        ),
        pod_last_captured=_cooldowns(current, outcome, now, cooldown),
        pending_capture=None,
        immediate_done=progress.immediate_done,
        capture_now_handled=progress.capture_now_handled,
        captures=_counted(current.captures or CaptureCounts(), outcome),
        last_capture=entry,
        recent_captures=tuple(recent[:RECENT_CAPTURES]),
        conditions=conditions,
    )


def _counted(counts: CaptureCounts, outcome: CaptureOutcome) -> CaptureCounts:
    return CaptureCounts(
        total=counts.total + 1,
        failed=counts.failed + (outcome.result != "Succeeded"),
        profiles=counts.profiles + outcome.profiles_ok,
        profiles_failed=counts.profiles_failed + outcome.profiles_failed,
    )


def _cooldowns(
    current: SessionStatus, outcome: CaptureOutcome, now: datetime.datetime, cooldown: float
) -> dict[str, str]:
    """Per-pod capture times for the cooldown, with the captured pods; the expired dropped."""
    captured_at = {
        pod: when
        for pod, when in current.pod_last_captured.items()
        if (now - parse_time(when)).total_seconds() < cooldown
    }
    for pod in outcome.pods:
        captured_at[pod.pod] = format_time(outcome.request.requested_at)
    return captured_at


def set_condition(
    conditions: Sequence[Condition],
    type: str,
    verdict: Verdict,
    *,
    generation: int,
    now: datetime.datetime,
) -> tuple[Condition, ...]:
    """Conditions with `type` replaced; lastTransitionTime moves only when the status flips."""
    previous = next((c for c in conditions if c.type == type), None)
    # Formatted only on a flip: this runs for every condition on every look.
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == verdict.ok
        else None
    ) or format_time(now)
    replaced = Condition(
        type=type,
        status=verdict.ok,
        reason=verdict.reason,
        message=verdict.message,
        observed_generation=generation,
        last_transition_time=transition,
    )
    others = [c for c in conditions if c.type != type]
    return tuple(sorted([*others, replaced], key=lambda c: c.type))


def phase_for(*, capturing: bool, reachable: int, is_expired: bool = False) -> str:
    if capturing:
        return "Capturing"
    if is_expired:
        return "Expired"
    return "Armed" if reachable else "Pending"


def port_forward_conditions(
    conditions: Sequence[Condition],
    *,
    access: str,
    missing: Sequence[str] | None,
    namespace: str,
    generation: int,
    now: datetime.datetime,
) -> tuple[Condition, ...]:
    """The PortForwardAllowed condition for sessions that may port-forward; gone for direct.

    `missing`: the verbs on pods/portforward the operator lacks; None when not known (the
    review failed), so the conditions stay as they were.
    """
    if access == "direct":
        return tuple(c for c in conditions if c.type != "PortForwardAllowed")
    if missing is None:
        return tuple(conditions)
    if not missing:
        message = f"The operator may open port-forwards to pods in {namespace} (access {access})."
    else:
        consequence = (
            "every capture would fail"
            if access == "portForward"
            else "pods whose IP does not answer cannot be captured"
        )
        message = (
            f"The operator lacks {' and '.join(missing)} on pods/portforward in {namespace}: "
            f"{consequence}. Grant it create and get on pods/portforward "
            "(Helm: rbac.portForward=true)."
        )
    verdict = Verdict(not missing, "Forbidden" if missing else "Allowed", message)
    return set_condition(conditions, "PortForwardAllowed", verdict, generation=generation, now=now)


def _set(
    conditions: Sequence[Condition], type: str, verdict: Verdict, look: Look
) -> tuple[Condition, ...]:
    return set_condition(conditions, type, verdict, generation=look.generation, now=look.now)


def _targets_conditions(conditions: Sequence[Condition], look: Look) -> tuple[Condition, ...]:
    """TargetsReachable and Ready from the latest look at the pods."""
    matched, reachable, selector = look.matched, look.reachable, look.selector
    if reachable:
        message = f"{reachable} of {matched} pod(s) matching {selector} are ready to profile."
        targets = Verdict(True, "PodsReachable", message)
    elif matched:
        message = f"{matched} pod(s) match {selector}, but none is running and ready with an IP."
        targets = Verdict(False, "PodsNotReady", message)
    else:
        targets = Verdict(False, "NoPodsMatched", f"No pod in this namespace matches {selector}.")
    if look.expired:
        message = "The session has passed limits.expiresAfter; it captures nothing more."
        ready = Verdict(False, "Expired", message)
    else:
        ready = Verdict(True, "SpecAccepted", "The session is valid and watched for triggers.")
    return _set(_set(conditions, "TargetsReachable", targets, look), "Ready", ready, look)


def _metrics_conditions(
    conditions: Sequence[Condition], report: MetricsReport, look: Look
) -> tuple[Condition, ...]:
    """MetricsAvailable and RulesApplicable after an evaluation (no timestamps in messages,
    so that a steady state writes nothing)."""
    if report.error is not None or report.batch is None:
        available = Verdict(False, "SourceFailed", f"{report.source}: {report.error}")
    else:
        batch = report.batch
        ok = batch.reporting > 0 or batch.asked == 0
        message = (
            f"{report.source}: metrics for {batch.reporting} of {batch.asked} selected pod(s)."
        )
        if batch.problems:
            message += " " + "; ".join(batch.problems)
        available = Verdict(ok, "Reporting" if ok else "NoData", message)
    conditions = _set(conditions, "MetricsAvailable", available, look)
    problems = report.problems
    if problems:
        shown = "; ".join(p.message for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        rules = Verdict(False, "MissingResourceBounds", shown + more + ".")
    else:
        rules = Verdict(True, "AllRulesApply", "Every rule applies to every reporting pod.")
    return _set(conditions, "RulesApplicable", rules, look)


def _suppressed(
    current: SessionStatus, suppressions: Sequence[Suppression], now: datetime.datetime
) -> SessionStatus:
    if not suppressions:
        return current
    last = suppressions[-1]
    total = current.suppressed.total if current.suppressed else 0
    return dataclasses.replace(
        current,
        suppressed=Suppressed(
            total + len(suppressions),
            LastSuppression(format_time(now), last.pod, last.rule, last.guard, last.message),
        ),
    )


def _alerts_handled(current: SessionStatus, keys: Sequence[str]) -> SessionStatus:
    """Alert keys moved from pendingAlerts to the bounded alertsHandled list."""
    if not keys:
        return current
    kept = [k for k in current.alerts_handled if k not in keys]
    return dataclasses.replace(
        current,
        pending_alerts={k: a for k, a in current.pending_alerts.items() if k not in keys},
        alerts_handled=tuple([*kept, *keys][-HANDLED_ALERTS:]),
    )
