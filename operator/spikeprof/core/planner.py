"""Which capture to run next for a session, decided from its spec, annotations and status.

A capture is decided once and recorded in status as pending before any profile is fetched; its id
(UTC time of the decision and the trigger) names the artifact directories. A restarted operator
finds the pending capture and resumes it under the same id, so it is neither lost nor duplicated.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core.rules import Firing
from spikeprof.core.spec import SessionSpec

CAPTURE_NOW_ANNOTATION = "spikeprof.io/capture-now"


@dataclass(frozen=True)
class CaptureRequest:
    id: str
    trigger: str  # immediate | capture-now
    reason: str
    requested_at: datetime.datetime
    token: str | None = None  # the capture-now value it answers, if any
    pods: tuple[str, ...] | None = None  # the pods a rule fired on; None: every selected pod
    alert_keys: tuple[str, ...] = ()  # the pending alerts this capture answers
    restarts: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    """Trigger restart: the records of status.restarts it answers, as rendered there."""

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "trigger": self.trigger,
            "reason": self.reason,
            "requestedAt": format_time(self.requested_at),
        }
        if self.token is not None:
            out["token"] = self.token
        if self.pods is not None:
            out["pods"] = list(self.pods)
        if self.alert_keys:
            out["alertKeys"] = list(self.alert_keys)
        if self.restarts:
            out["restarts"] = [dict(r) for r in self.restarts]
        return out

    @classmethod
    def from_status(cls, raw: Mapping[str, Any]) -> CaptureRequest:
        return cls(
            id=str(raw["id"]),
            trigger=str(raw["trigger"]),
            reason=str(raw.get("reason", "")),
            requested_at=parse_time(str(raw["requestedAt"])),
            token=raw.get("token"),
            pods=tuple(raw["pods"]) if raw.get("pods") is not None else None,
            alert_keys=tuple(raw.get("alertKeys") or ()),
            restarts=tuple(raw.get("restarts") or ()),
        )


@dataclass(frozen=True)
class Progress:
    """What has already been acted on: status as stored, plus what this process did since."""

    immediate_done: bool
    capture_now_handled: str | None
    pending: CaptureRequest | None
    baseline_done: bool = False


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def capture_id(moment: datetime.datetime, trigger: str) -> str:
    """A directory-safe, sortable id: UTC time to the millisecond, then the trigger."""
    utc = moment.astimezone(datetime.UTC)
    return f"{utc:%Y%m%dT%H%M%S}.{utc.microsecond // 1000:03d}Z-{trigger}"


def next_capture(
    spec: SessionSpec,
    annotations: Mapping[str, str],
    progress: Progress,
    now: datetime.datetime,
) -> CaptureRequest | None:
    """The capture to run now, if any: a pending one first, then immediate, then capture-now."""
    if progress.pending is not None:
        return progress.pending
    if spec.trigger.baseline and not progress.baseline_done:
        # First, while calm: the picture later captures are compared with.
        return CaptureRequest(
            id=capture_id(now, "baseline"),
            trigger="baseline",
            reason="spec.trigger.baseline: the calm state, for later captures to be diffed against",
            requested_at=now,
        )
    if spec.immediate and not progress.immediate_done:
        return CaptureRequest(
            id=capture_id(now, "immediate"),
            trigger="immediate",
            reason="spec.trigger.immediate is true",
            requested_at=now,
        )
    token = annotations.get(CAPTURE_NOW_ANNOTATION)
    if token is not None and token != progress.capture_now_handled:
        return CaptureRequest(
            id=capture_id(now, "capture-now"),
            trigger="capture-now",
            reason=f"annotation {CAPTURE_NOW_ANNOTATION}={token}",
            requested_at=now,
            token=token,
        )
    return None


def threshold_capture(firings: Sequence[Firing], now: datetime.datetime) -> CaptureRequest:
    """One capture for every pod a rule fired on in this evaluation, each reason kept."""
    pods = tuple(sorted({f.pod for f in firings}))
    reason = "; ".join(f"{f.pod}: {f.rule}: {f.reason}" for f in firings)
    return CaptureRequest(
        id=capture_id(now, "threshold"),
        trigger="threshold",
        reason=reason,
        requested_at=now,
        pods=pods,
    )


def alert_capture(
    pending: Mapping[str, str],
    allowed_pods: Sequence[str] | None,
    now: datetime.datetime,
) -> CaptureRequest:
    """One capture answering every pending alert (key -> alert name); `allowed_pods` None
    means all selected pods."""
    names = sorted(set(pending.values()))
    reason = f"alert {', '.join(names)} fired ({len(pending)} notification(s))"
    return CaptureRequest(
        id=capture_id(now, "alert"),
        trigger="alert",
        reason=reason,
        requested_at=now,
        pods=tuple(sorted(allowed_pods)) if allowed_pods is not None else None,
        alert_keys=tuple(sorted(pending)),
    )


def progress_after(progress: Progress, request: CaptureRequest) -> Progress:
    """Progress once `request` has finished: its trigger is consumed and nothing is pending."""
    return Progress(
        immediate_done=progress.immediate_done or request.trigger == "immediate",
        capture_now_handled=request.token
        if request.token is not None
        else progress.capture_now_handled,
        pending=None,
        baseline_done=progress.baseline_done or request.trigger == "baseline",
    )
