"""What metric sources hand to the rules: observations, their problems, and counter rates."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikeprof.core.rules import Observation
from spikeprof.errors import SpikeprofError


class MetricsUnavailableError(SpikeprofError):
    """The session's metric source gave nothing usable; the message says what failed."""


@dataclass(frozen=True)
class ObservationBatch:
    observations: tuple[Observation, ...]
    reporting: int  # pods with at least one observation
    asked: int  # pods the source was asked about
    problems: tuple[str, ...] = field(default_factory=tuple)  # per pod, first few


class CounterRates:
    """Per-second rates of cumulative counters (e.g. process_cpu_seconds_total) per pod."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, pod: str, value: float, at: float) -> float | None:
        """The rate since the pod's previous value; None on the first value or a reset."""
        previous = self._last.get(pod)
        self._last[pod] = (value, at)
        if previous is None:
            return None
        last_value, last_at = previous
        if at <= last_at or value < last_value:
            return None  # same scrape, clock skew, or the process restarted
        return (value - last_value) / (at - last_at)

    def forget_except(self, pods: set[str]) -> None:
        for pod in set(self._last) - pods:
            del self._last[pod]
