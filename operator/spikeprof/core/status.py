"""The session's status as people read it: phase, conditions, counters, recent captures.

Functions here return merge-patch fragments for `.status`; the handlers send them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from spikeprof.core.guards import Suppression
from spikeprof.core.observations import ObservationBatch
from spikeprof.core.planner import CaptureRequest, Progress, format_time, parse_time
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.rules import RuleProblem

RECENT_CAPTURES = 10


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """Conditions with `type` replaced; lastTransitionTime moves only when the status flips."""
    value = "True" if status else "False"
    out: list[dict[str, Any]] = []
    previous: Mapping[str, Any] | None = None
    for condition in conditions:
        if condition.get("type") == type:
            previous = condition
        else:
            out.append(dict(condition))
    transition = format_time(now)
    if previous is not None and previous.get("status") == value:
        transition = str(previous.get("lastTransitionTime", transition))
    out.append(
        {
            "type": type,
            "status": value,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }
    )
    return sorted(out, key=lambda c: str(c["type"]))


def targets_fragment(matched: int, reachable: int) -> dict[str, Any]:
    return {"matched": matched, "reachable": reachable, "summary": f"{reachable}/{matched}"}


def phase_for(*, capturing: bool, reachable: int, is_expired: bool = False) -> str:
    if capturing:
        return "Capturing"
    if is_expired:
        return "Expired"
    return "Armed" if reachable else "Pending"


def observation_patch(
    status: Mapping[str, Any],
    *,
    matched: int,
    reachable: int,
    capturing: bool,
    selector: str,
    generation: int,
    now: datetime.datetime,
    is_expired: bool = False,
) -> dict[str, Any]:
    """Phase, targets and the TargetsReachable/Ready conditions from the latest look at pods."""
    conditions: Sequence[Mapping[str, Any]] = status.get("conditions") or ()
    if reachable:
        message = f"{reachable} of {matched} pod(s) matching {selector} are ready to profile."
        reason = "PodsReachable"
    elif matched:
        message = f"{matched} pod(s) match {selector}, but none is running and ready with an IP."
        reason = "PodsNotReady"
    else:
        message = f"No pod in this namespace matches {selector}."
        reason = "NoPodsMatched"
    conditions = set_condition(
        conditions,
        type="TargetsReachable",
        status=reachable > 0,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions,
        type="Ready",
        status=not is_expired,
        reason="Expired" if is_expired else "SpecAccepted",
        message=(
            "The session has passed limits.expiresAfter; it captures nothing more."
            if is_expired
            else "The session is valid and watched for triggers."
        ),
        generation=generation,
        now=now,
    )
    return {
        "phase": phase_for(capturing=capturing, reachable=reachable, is_expired=is_expired),
        "observedGeneration": generation,
        "targets": targets_fragment(matched, reachable),
        "conditions": conditions,
    }


def invalid_spec_patch(
    status: Mapping[str, Any], message: str, generation: int, now: datetime.datetime
) -> dict[str, Any]:
    return {
        "phase": "Failed",
        "observedGeneration": generation,
        "conditions": set_condition(
            status.get("conditions") or (),
            type="Ready",
            status=False,
            reason="InvalidSpec",
            message=message,
            generation=generation,
            now=now,
        ),
    }


def pending_patch(request: CaptureRequest) -> dict[str, Any]:
    return {"phase": "Capturing", "pendingCapture": request.to_status()}


def metrics_patch(
    status: Mapping[str, Any],
    *,
    source: str,
    batch: ObservationBatch | None,
    error: str | None,
    problems: Sequence[RuleProblem],
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """MetricsAvailable and RulesApplicable after an evaluation (no timestamps in messages,
    so that a steady state writes nothing)."""
    conditions: Sequence[Mapping[str, Any]] = status.get("conditions") or ()
    if error is not None:
        available, reason, message = False, "SourceFailed", f"{source}: {error}"
    else:
        assert batch is not None
        available = batch.reporting > 0 or batch.asked == 0
        reason = "Reporting" if available else "NoData"
        message = f"{source}: metrics for {batch.reporting} of {batch.asked} selected pod(s)."
        if batch.problems:
            message += " " + "; ".join(batch.problems)
    conditions = set_condition(
        conditions,
        type="MetricsAvailable",
        status=available,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    if problems:
        shown = "; ".join(p.message for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        conditions = set_condition(
            conditions,
            type="RulesApplicable",
            status=False,
            reason="MissingResourceBounds",
            message=shown + more + ".",
            generation=generation,
            now=now,
        )
    else:
        conditions = set_condition(
            conditions,
            type="RulesApplicable",
            status=True,
            reason="AllRulesApply",
            message="Every rule applies to every reporting pod.",
            generation=generation,
            now=now,
        )
    return {"conditions": conditions}


def suppression_patch(
    status: Mapping[str, Any], suppressions: Sequence[Suppression], now: datetime.datetime
) -> dict[str, Any]:
    previous = status.get("suppressed") or {}
    last = suppressions[-1]
    return {
        "suppressed": {
            "total": int(previous.get("total", 0)) + len(suppressions),
            "last": {
                "time": format_time(now),
                "pod": last.pod,
                "rule": last.rule,
                "guard": last.guard,
                "message": last.message,
            },
        }
    }


HANDLED_ALERTS = 100  # alert keys remembered, so that Alertmanager's re-sends capture once


def alerts_handled_patch(status: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Move alert keys from pendingAlerts to the bounded alertsHandled list."""
    if not keys:
        return {}
    handled = [k for k in status.get("alertsHandled") or () if k not in keys]
    return {
        "pendingAlerts": {key: None for key in keys},
        "alertsHandled": [*handled, *keys][-HANDLED_ALERTS:],
    }


def capture_done_patch(
    status: Mapping[str, Any],
    outcome: CaptureOutcome,
    progress: Progress,
    generation: int,
    now: datetime.datetime,
    cooldown: float = 0.0,
) -> dict[str, Any]:
    """Counters, lastCapture, recentCaptures and the consumed trigger, in one patch."""
    counters = dict(status.get("captures") or {})
    total = int(counters.get("total", 0)) + 1
    failed = int(counters.get("failed", 0)) + (outcome.result != "Succeeded")
    entry = outcome.to_status()
    recent = [entry, *[c for c in status.get("recentCaptures") or () if c.get("id") != entry["id"]]]
    ok = outcome.result == "Succeeded"
    # Per-pod capture times for the cooldown; entries past the cooldown are dropped.
    # A merge patch removes a map key only when told to with null.
    previous = {k: v for k, v in (status.get("podLastCaptured") or {}).items() if v}
    captured_at: dict[str, str | None] = {
        pod: (when if (now - parse_time(when)).total_seconds() < cooldown else None)
        for pod, when in previous.items()
    }
    for pod in outcome.pods:
        captured_at[pod.pod] = format_time(outcome.request.requested_at)
    baseline = {}
    if outcome.request.trigger == "baseline":
        baseline = {"baselineCapture": outcome.request.id}
    return {
        **baseline,
        **alerts_handled_patch(status, outcome.request.alert_keys),
        "podLastCaptured": captured_at or None,
        "pendingCapture": None,
        "immediateDone": progress.immediate_done,
        "captureNowHandled": progress.capture_now_handled,
        "captures": {
            "total": total,
            "failed": failed,
            "profiles": int(counters.get("profiles", 0)) + outcome.profiles_ok,
            "profilesFailed": int(counters.get("profilesFailed", 0)) + outcome.profiles_failed,
        },
        "lastCapture": entry,
        "recentCaptures": recent[:RECENT_CAPTURES],
        "conditions": set_condition(
            status.get("conditions") or (),
            type="LastCaptureSucceeded",
            status=ok,
            reason=outcome.result,
            message=outcome.summary(),
            generation=generation,
            now=now,
        ),
    }


def port_forward_conditions(
    conditions: Sequence[Mapping[str, Any]],
    *,
    access: str,
    missing: Sequence[str] | None,
    namespace: str,
    generation: int,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """The PortForwardAllowed condition for sessions that may port-forward; gone for direct.

    `missing`: the verbs on pods/portforward the operator lacks; None when not known (the
    review failed), so the conditions stay as they were.
    """
    if access == "direct":
        return [dict(c) for c in conditions if c.get("type") != "PortForwardAllowed"]
    if missing is None:
        return [dict(c) for c in conditions]
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
    return set_condition(
        conditions,
        type="PortForwardAllowed",
        status=not missing,
        reason="Forbidden" if missing else "Allowed",
        message=message,
        generation=generation,
        now=now,
    )
