"""SpikeWatcher: asks the metric source when an evaluation is due, and applies rules and guards."""

from __future__ import annotations

from typing import Any

from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import TargetSpec, TriggerSpec, parse_spec
from spikeprof.services.triggers import SpikeWatcher
from tests.unit.services.conftest import NOW, FakeMetricSource, pod, source_down, spec

PODS = [pod("web-1"), pod("web-2", ip="10.0.0.2")]


def _spec(**limits: Any) -> Any:
    trigger = {
        "thresholds": [{"metric": "memory", "above": "1Gi"}],
        "metricsSource": "scrape",
        "interval": "10s",
    }
    return parse_spec(spec(trigger=trigger, limits=limits))


def _watcher(source: FakeMetricSource) -> SpikeWatcher:
    def make(trigger: TriggerSpec, target: TargetSpec) -> FakeMetricSource:
        return source

    return SpikeWatcher(make)


async def test_a_pod_above_the_threshold_is_asked_for_and_others_are_not() -> None:
    source = FakeMetricSource([{"web-1": 2.0 * 2**30, "web-2": 1.0}])
    evaluation = await _watcher(source).evaluate(
        namespace="shop",
        spec=_spec(),
        reachable=PODS,
        current=SessionStatus(),
        now=NOW,
        monotonic=100.0,
    )
    assert evaluation is not None and evaluation.request is not None
    assert evaluation.request.pods == ("web-1",)
    assert evaluation.request.trigger == "threshold"
    assert evaluation.report.batch is not None and evaluation.report.batch.reporting == 2
    assert source.asked == [["web-1", "web-2"]]


async def test_the_source_is_asked_again_only_after_the_interval() -> None:
    source = FakeMetricSource([{"web-1": 1.0}, {"web-1": 1.0}])
    watcher = _watcher(source)
    parsed = _spec()
    for monotonic in (100.0, 105.0, 110.0):
        await watcher.evaluate(
            namespace="shop",
            spec=parsed,
            reachable=PODS[:1],
            current=SessionStatus(),
            now=NOW,
            monotonic=monotonic,
        )
    assert len(source.asked) == 2


async def test_a_source_that_fails_is_reported_and_captures_nothing() -> None:
    source = FakeMetricSource([source_down("GET /metrics: connection refused")])
    evaluation = await _watcher(source).evaluate(
        namespace="shop",
        spec=_spec(),
        reachable=PODS,
        current=SessionStatus(),
        now=NOW,
        monotonic=100.0,
    )
    assert evaluation is not None and evaluation.request is None
    assert evaluation.report.error == "GET /metrics: connection refused"


async def test_a_firing_within_the_cooldown_is_suppressed_with_an_event() -> None:
    source = FakeMetricSource([{"web-1": 2.0 * 2**30}])
    status = SessionStatus.parse({"podLastCaptured": {"web-1": "2026-11-26T00:58:00Z"}})
    evaluation = await _watcher(source).evaluate(
        namespace="shop",
        spec=_spec(cooldown="10m"),
        reachable=PODS[:1],
        current=status,
        now=NOW,
        monotonic=100.0,
    )
    assert evaluation is not None and evaluation.request is None
    [held] = evaluation.suppressed
    assert (held.pod, held.guard) == ("web-1", "Cooldown")
    [(kind, reason, message)] = evaluation.events
    assert (kind, reason) == ("Normal", "CaptureSuppressed")
    assert (
        message.startswith("Rule ") and "fired on pod web-1, but no capture (Cooldown)" in message
    )
