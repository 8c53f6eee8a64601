"""Watching a session's pods for spikes: ask the metric source, apply rules and guards."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from spikeprof.core import planner
from spikeprof.core.guards import Suppression, apply_session_guards
from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.pods import PodInfo
from spikeprof.core.rules import Metric, RuleEngine
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import SessionSpec, TargetSpec, TriggerSpec
from spikeprof.core.status import MetricsReport

Event = tuple[str, str, str]  # (type, reason, message)


class MetricSource(Protocol):
    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch: ...


@runtime_checkable
class SharedSchedule(Protocol):
    """A source whose answers sessions share (one request for all of a namespace's) sets when
    each evaluates, so that they ask together."""

    def next_evaluation(self, namespace: str, after: float, interval: float) -> float: ...


SourceFactory = Callable[[TriggerSpec, TargetSpec], MetricSource]


@dataclass
class Evaluation:
    """What one evaluation found: the capture it asks for, and what status and events say."""

    request: planner.CaptureRequest | None
    report: MetricsReport
    suppressed: list[Suppression] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class SpikeWatcher:
    """One session's metric source and rule state; rebuilt when the trigger spec changes."""

    def __init__(self, make_source: SourceFactory) -> None:
        self.make_source = make_source
        self.trigger: TriggerSpec | None = None
        self.source: MetricSource | None = None
        self.engine = RuleEngine(())
        self.next_at = 0.0
        # The source, when it sets when sessions evaluate (checked once: a Protocol's
        # isinstance is slow enough to show in a profile of thousands of evaluations).
        self.schedule: SharedSchedule | None = None

    async def evaluate(
        self,
        *,
        namespace: str,
        spec: SessionSpec,
        reachable: Sequence[PodInfo],
        current: SessionStatus,
        now: datetime.datetime,
        monotonic: float,
    ) -> Evaluation | None:
        """An evaluation when one is due (every trigger.interval), else None."""
        trigger = spec.trigger
        if not trigger.thresholds:
            return None
        # The same object look after look once the spec is parsed once per generation: the
        # identity test spares comparing every field of every threshold.
        if (trigger is not self.trigger and trigger != self.trigger) or self.source is None:
            self.trigger = trigger
            self.engine = RuleEngine(trigger.thresholds)
            self.next_at = 0.0
            try:
                self.source = self.make_source(trigger, spec.target)
                self.schedule = self.source if isinstance(self.source, SharedSchedule) else None
            # No source for this spec (e.g. no Prometheus configured): MetricsAvailable says so.
            except MetricsUnavailableError as error:
                self.source = None
                self.schedule = None
                return Evaluation(None, MetricsReport(trigger.source, None, str(error)))
        if monotonic < self.next_at:
            return None
        if self.schedule is not None:
            self.next_at = self.schedule.next_evaluation(namespace, monotonic, trigger.interval)
        else:
            self.next_at = monotonic + trigger.interval
        try:
            batch = await self.source.observe(namespace, reachable, self.engine.metrics)
        # The source did not answer this time: MetricsAvailable says why; asked again next time.
        except MetricsUnavailableError as error:
            return Evaluation(None, MetricsReport(trigger.source, None, str(error)))
        firings, problems = self.engine.observe(
            batch.observations, {pod.name: pod.resources for pod in reachable}
        )
        report = MetricsReport(trigger.source, batch, problems=problems)
        if not firings:
            return Evaluation(None, report)
        decision = apply_session_guards(firings, limits=spec.limits, status=current, now=now)
        events: list[Event] = [
            (
                "Normal",
                "CaptureSuppressed",
                f"Rule {s.rule} fired on pod {s.pod}, but no capture ({s.guard}): {s.message}.",
            )
            for s in decision.suppressed
        ]
        request = planner.threshold_capture(decision.allowed, now) if decision.allowed else None
        return Evaluation(request, report, list(decision.suppressed), events)
