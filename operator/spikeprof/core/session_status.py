"""A ProfilingSession's `.status`, typed: parsed from the resource and rendered back to it.

The fields follow the CRD's status schema (crds/spikeprof.io_profilingsessions.yaml). A field
the stored status lacks parses to None (or empty) and is rendered only once it holds something,
so that parsing and rendering a status unchanged gives no patch (`SessionStatus.patch_to`).
Capture entries stay as `CaptureOutcome` renders them (lastCapture: `to_status`, recentCaptures:
`to_recent_status`); the operator reads into them only to name a restarted pod's last capture
(`restarts.last_capture_of`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core import merge_patch
from spikeprof.core.planner import CaptureRequest, Progress, parse_time
from spikeprof.core.restarts import RestartRecord

CaptureEntry = Mapping[str, Any]  # one of recentCaptures, as CaptureOutcome renders it


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str
    observed_generation: int
    last_transition_time: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(raw.get("type", "")),
            status=raw.get("status") == "True",
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            observed_generation=int(raw.get("observedGeneration") or 0),
            last_transition_time=str(raw.get("lastTransitionTime", "")),
        )

    def render(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "observedGeneration": self.observed_generation,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(frozen=True)
class Targets:
    matched: int
    reachable: int

    def render(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "reachable": self.reachable,
            "summary": f"{self.reachable}/{self.matched}",
        }


@dataclass(frozen=True)
class CaptureCounts:
    total: int = 0
    failed: int = 0
    profiles: int = 0
    profiles_failed: int = 0

    def render(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "failed": self.failed,
            "profiles": self.profiles,
            "profilesFailed": self.profiles_failed,
        }


@dataclass(frozen=True)
class LastSuppression:
    time: str
    pod: str
    rule: str
    guard: str
    message: str


@dataclass(frozen=True)
class Suppressed:
    total: int
    last: LastSuppression | None

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"total": self.total}
        if self.last is not None:
            out["last"] = dataclasses.asdict(self.last)
        return out


@dataclass(frozen=True)
class PendingAlert:
    """An alert recorded by the receiver that the session's loop has not captured yet."""

    alert: str
    pods: tuple[str, ...] | None  # None: every selected pod
    received_at: str | None = None
    starts_at: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PendingAlert:
        pods = raw.get("pods")
        return cls(
            alert=str(raw.get("alert")),
            pods=tuple(pods) if pods is not None else None,
            received_at=raw.get("receivedAt"),
            starts_at=raw.get("startsAt"),
        )

    def render(self) -> dict[str, Any]:
        out = {
            "alert": self.alert,
            "pods": list(self.pods) if self.pods is not None else None,
            "receivedAt": self.received_at,
            "startsAt": self.starts_at,
        }
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class SessionStatus:
    phase: str | None = None  # Pending | Arming | Armed | Capturing | Expired | Failed
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    targets: Targets | None = None
    captures: CaptureCounts | None = None
    pod_last_captured: Mapping[str, str] = field(default_factory=dict)
    """When each pod was last captured, while its cooldown lasts."""
    suppressed: Suppressed | None = None
    armed_workloads: tuple[str, ...] | None = None
    """Workloads this session armed ("Kind/name"); None: it armed none."""
    baseline_capture: str | None = None
    pending_alerts: Mapping[str, PendingAlert] = field(default_factory=dict)
    alerts_handled: tuple[str, ...] = ()
    """Alert keys already answered, so that Alertmanager's re-sends capture once."""
    capture_now_handled: str | None = None
    immediate_done: bool | None = None
    pending_capture: CaptureRequest | None = None
    """A capture decided and recorded before its profiles are fetched: it resumes after a crash."""
    last_capture: CaptureEntry | None = None
    recent_captures: tuple[CaptureEntry, ...] = ()
    restarts_seen: Mapping[str, int] = field(default_factory=dict)
    """Restart count last seen per "<pod UID>/<container>" (containers that restarted)."""
    restarts: tuple[RestartRecord, ...] = ()
    """Container restarts seen during the session, newest first (bounded)."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SessionStatus:
        def _obj(key: str) -> Mapping[str, Any]:
            value = raw.get(key)
            return value if isinstance(value, Mapping) else {}

        targets, captures, suppressed = _obj("targets"), _obj("captures"), _obj("suppressed")
        last = suppressed.get("last")
        pending = raw.get("pendingCapture")
        armed = raw.get("armedWorkloads")
        return cls(
            phase=raw.get("phase"),
            observed_generation=raw.get("observedGeneration"),
            conditions=tuple(Condition.parse(c) for c in raw.get("conditions") or ()),
            targets=(
                Targets(int(targets.get("matched", 0)), int(targets.get("reachable", 0)))
                if targets
                else None
            ),
            captures=(
                CaptureCounts(
                    total=int(captures.get("total", 0)),
                    failed=int(captures.get("failed", 0)),
                    profiles=int(captures.get("profiles", 0)),
                    profiles_failed=int(captures.get("profilesFailed", 0)),
                )
                if captures
                else None
            ),
            pod_last_captured={k: str(v) for k, v in _obj("podLastCaptured").items() if v},
            suppressed=(
                Suppressed(
                    int(suppressed.get("total", 0)),
                    LastSuppression(**{k: str(last.get(k, "")) for k in _SUPPRESSION_KEYS})
                    if isinstance(last, Mapping)
                    else None,
                )
                if suppressed
                else None
            ),
            armed_workloads=tuple(armed) if armed is not None else None,
            baseline_capture=raw.get("baselineCapture") or None,
            pending_alerts={
                key: PendingAlert.parse(entry)
                for key, entry in _obj("pendingAlerts").items()
                if entry
            },
            alerts_handled=tuple(raw.get("alertsHandled") or ()),
            capture_now_handled=raw.get("captureNowHandled"),
            immediate_done=raw.get("immediateDone"),
            pending_capture=CaptureRequest.from_status(pending) if pending else None,
            last_capture=raw.get("lastCapture"),
            recent_captures=tuple(raw.get("recentCaptures") or ()),
            restarts_seen={k: int(v) for k, v in _obj("restartsSeen").items() if v is not None},
            restarts=tuple(RestartRecord.parse(r) for r in raw.get("restarts") or ()),
        )

    def render(self) -> dict[str, Any]:
        """The status as stored: fields that hold nothing are left out."""
        out: dict[str, Any] = {
            "phase": self.phase,
            "observedGeneration": self.observed_generation,
            "conditions": [c.render() for c in self.conditions] or None,
            "targets": self.targets.render() if self.targets else None,
            "captures": self.captures.render() if self.captures else None,
            "podLastCaptured": dict(self.pod_last_captured) or None,
            "suppressed": self.suppressed.render() if self.suppressed else None,
            "armedWorkloads": (
                list(self.armed_workloads) if self.armed_workloads is not None else None
            ),
            "baselineCapture": self.baseline_capture,
            "pendingAlerts": {k: a.render() for k, a in self.pending_alerts.items()} or None,
            "alertsHandled": list(self.alerts_handled) or None,
            "captureNowHandled": self.capture_now_handled,
            "immediateDone": self.immediate_done,
            "pendingCapture": self.pending_capture.to_status() if self.pending_capture else None,
            "lastCapture": dict(self.last_capture) if self.last_capture is not None else None,
            "recentCaptures": [dict(c) for c in self.recent_captures] or None,
            "restartsSeen": dict(self.restarts_seen) or None,
            "restarts": [r.render() for r in self.restarts] or None,
        }
        return {key: value for key, value in out.items() if value is not None}

    def patch_to(self, after: SessionStatus) -> dict[str, Any]:
        """The merge patch that turns this status into `after` ({} when they are the same)."""
        patch = merge_patch.diff(self.render(), after.render())
        # pendingAlerts has a second writer, the alert intake: emptied here, it is patched key
        # by key, so that an alert recorded meanwhile is not removed with those answered (a null
        # would remove the whole map, and with it an alert already answered 200).
        if "pendingAlerts" in patch and patch["pendingAlerts"] is None:
            patch["pendingAlerts"] = {key: None for key in self.pending_alerts}
        return patch

    def condition(self, type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type), None)

    def progress(self) -> Progress:
        """What the stored status says is already acted on."""
        return Progress(
            immediate_done=bool(self.immediate_done),
            capture_now_handled=self.capture_now_handled,
            pending=self.pending_capture,
            baseline_done=bool(self.baseline_capture),
        )

    def last_captured(self) -> dict[str, datetime.datetime]:
        """Per pod, when it was last captured (as a datetime), for the cooldown guard."""
        return {pod: parse_time(when) for pod, when in self.pod_last_captured.items()}

    def captures_so_far(self) -> int:
        return self.captures.total if self.captures else 0


_SUPPRESSION_KEYS = ("time", "pod", "rule", "guard", "message")
