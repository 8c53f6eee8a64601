"""Alertmanager webhook notifications: validated, matched to sessions, keyed for dedup.

Alertmanager posts `version: "4"` payloads (status, groupKey, alerts with labels, annotations,
startsAt, endsAt, fingerprint) and re-sends the same firing alerts on every group_interval; the
key of an alert occurrence is its fingerprint and startsAt, so a re-send maps to the same key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spikeprof.core.pods import PodInfo
from spikeprof.core.selector import LabelSelector
from spikeprof.errors import SpikeprofError

MAX_ALERTS = 1000  # per notification; Alertmanager's max_alerts is usually far lower


class PayloadError(SpikeprofError, ValueError):
    """The request is not an Alertmanager v4 notification; the message says what is wrong."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str

    @property
    def key(self) -> str:
        """Same for every re-send of one occurrence of the alert."""
        return f"{self.fingerprint}@{self.starts_at}"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "(no alertname)")


@dataclass(frozen=True)
class Notification:
    status: str
    group_key: str
    alerts: tuple[Alert, ...]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PayloadError(f"{where} must be an object of string values")
    return dict(value)


def _required_string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}.{key} is missing or not a string")
    return value


def parse_notification(payload: Any) -> Notification:
    if not isinstance(payload, Mapping):
        raise PayloadError("the body must be a JSON object")
    version = payload.get("version")
    if version != "4":
        raise PayloadError(
            f'version {version!r} is not supported: expected "4" (Alertmanager 0.x webhook)'
        )
    status = _required_string(payload, "status", "payload")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"payload.status {status!r} is neither firing nor resolved")
    group_key = _required_string(payload, "groupKey", "payload")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("payload.alerts is missing or not a list")
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError(f"payload.alerts has {len(raw_alerts)} alerts; at most {MAX_ALERTS}")
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, Mapping):
            raise PayloadError(f"{where} must be an object")
        alert_status = _required_string(raw, "status", where)
        if alert_status not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status {alert_status!r} is neither firing nor resolved")
        alerts.append(
            Alert(
                status=alert_status,
                labels=_string_map(raw.get("labels"), f"{where}.labels"),
                annotations=_string_map(raw.get("annotations", {}), f"{where}.annotations"),
                starts_at=_required_string(raw, "startsAt", where),
                ends_at=str(raw.get("endsAt", "")),
                fingerprint=_required_string(raw, "fingerprint", where),
            )
        )
    return Notification(status=status, group_key=group_key, alerts=tuple(alerts))


@dataclass(frozen=True)
class AlertMatcher:
    """A session's trigger.alerts: equality and (fully anchored) regex label matchers."""

    equal: tuple[tuple[str, str], ...]
    regex: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AlertMatcher:
        equal = tuple(sorted((spec.get("matchLabels") or {}).items()))
        patterns = []
        for label, pattern in sorted((spec.get("matchRegex") or {}).items()):
            try:
                patterns.append((label, re.compile(pattern)))
            except re.error as error:
                raise ValueError(
                    f"matchRegex.{label}: {pattern!r} is not a regex: {error}"
                ) from None
        return cls(equal, tuple(patterns))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.equal) and all(
            p.fullmatch(labels.get(k, "")) is not None for k, p in self.regex
        )


def alert_pods(
    alert: Alert, namespace: str, selector: LabelSelector, pods: Sequence[PodInfo]
) -> tuple[str, ...] | None:
    """The session's pods an alert asks to capture: () for none, None for all of them.

    An alert naming a pod (labels namespace and pod) captures that pod if the session selects
    it; an alert naming no pod captures the session's pods; one naming another namespace
    captures nothing here.
    """
    alert_namespace = alert.labels.get("namespace")
    if alert_namespace is not None and alert_namespace != namespace:
        return ()
    pod = alert.labels.get("pod")
    if pod is None:
        return None
    selected = any(
        p.name == pod and selector.matches(p.labels, p.annotations, p.name) for p in pods
    )
    return (pod,) if selected else ()
