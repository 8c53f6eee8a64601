"""Watching a session's pods for spikes: ask the metric source, apply rules and guards."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spikeprof.core import planner
from spikeprof.core import status as status_rules
from spikeprof.core.guards import apply_session_guards
from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.pods import PodInfo
from spikeprof.core.rules import Metric, RuleEngine
from spikeprof.core.spec import SessionSpec, TargetSpec, TriggerSpec

Event = tuple[str, str, str]  # (type, reason, message)


class MetricSource(Protocol):
    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch: ...


SourceFactory = Callable[[TriggerSpec, TargetSpec], MetricSource]


@dataclass
class Evaluation:
    request: planner.CaptureRequest | None
    patch: dict[str, Any]
    events: list[Event] = field(default_factory=list)


class SpikeWatcher:
    """One session's metric source and rule state; rebuilt when the trigger spec changes."""

    def __init__(self, make_source: SourceFactory) -> None:
        self.make_source = make_source
        self.trigger: TriggerSpec | None = None
        self.source: MetricSource | None = None
        self.engine = RuleEngine(())
        self.next_at = 0.0

    async def evaluate(
        self,
        *,
        namespace: str,
        spec: SessionSpec,
        reachable: Sequence[PodInfo],
        current: Mapping[str, Any],
        generation: int,
        now: datetime.datetime,
        monotonic: float,
    ) -> Evaluation | None:
        """An evaluation when one is due (every trigger.interval), else None."""
        trigger = spec.trigger
        if not trigger.thresholds:
            return None
        if trigger != self.trigger or self.source is None:
            self.trigger = trigger
            self.engine = RuleEngine(trigger.thresholds)
            self.next_at = 0.0
            try:
                self.source = self.make_source(trigger, spec.target)
            except MetricsUnavailableError as error:
                self.source = None
                return self._failed(trigger, str(error), current, generation, now)
        if monotonic < self.next_at:
            return None
        self.next_at = monotonic + trigger.interval
        try:
            batch = await self.source.observe(namespace, reachable, self.engine.metrics)
        except MetricsUnavailableError as error:
            return self._failed(trigger, str(error), current, generation, now)
        firings, problems = self.engine.observe(
            batch.observations, {pod.name: pod.resources for pod in reachable}
        )
        patch = status_rules.metrics_patch(
            current,
            source=trigger.source,
            batch=batch,
            error=None,
            problems=problems,
            generation=generation,
            now=now,
        )
        if not firings:
            return Evaluation(None, patch)
        decision = apply_session_guards(firings, limits=spec.limits, status=current, now=now)
        events: list[Event] = []
        if decision.suppressed:
            patch.update(status_rules.suppression_patch(current, decision.suppressed, now))
            events += [
                (
                    "Normal",
                    "CaptureSuppressed",
                    f"Rule {s.rule} fired on pod {s.pod}, but no capture ({s.guard}): {s.message}.",
                )
                for s in decision.suppressed
            ]
        request = planner.threshold_capture(decision.allowed, now) if decision.allowed else None
        return Evaluation(request, patch, events)

    def _failed(
        self,
        trigger: TriggerSpec,
        error: str,
        current: Mapping[str, Any],
        generation: int,
        now: datetime.datetime,
    ) -> Evaluation:
        patch = status_rules.metrics_patch(
            current,
            source=trigger.source,
            batch=None,
            error=error,
            problems=(),
            generation=generation,
            now=now,
        )
        return Evaluation(None, patch)
