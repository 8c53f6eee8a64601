"""The sessions of one namespace share its PodMetrics list: one request per evaluation for all,
and one schedule that makes them evaluate together."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from spikeprof.adapters.kube import PodMetricsLists, PodMetricsSource
from spikeprof.core.observations import MetricsUnavailableError
from spikeprof.core.pods import PodInfo, pod_info
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import parse_spec
from spikeprof.services.triggers import SpikeWatcher
from tests.unit.raw_replies import RawReply
from tests.unit.services.conftest import NOW, spec


def _pod(name: str) -> PodInfo:
    return pod_info(
        {
            "metadata": {"name": name, "namespace": "shop", "uid": name},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }
    )


class _MetricsApi:
    """metrics.k8s.io as the API server serves it: the namespace's PodMetrics, counted."""

    def __init__(self, pods: list[str], failures: int = 0) -> None:
        self.pods = pods
        self.asked: list[str] = []
        self.failures = failures

    async def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **_: Any
    ) -> RawReply:
        self.asked.append(namespace)
        await asyncio.sleep(0.01)  # the API server takes a moment: others ask meanwhile
        if self.failures:
            self.failures -= 1
            raise ApiException(status=503, reason="Service Unavailable")
        items = [
            {
                "metadata": {"name": name},
                "timestamp": "2026-12-02T05:00:00Z",
                "containers": [{"usage": {"cpu": f"{(i + 1) * 1000000}n", "memory": "1Ki"}}],
            }
            for i, name in enumerate(self.pods)
        ]
        return RawReply(json.dumps({"items": items}).encode())


def _sources(api: _MetricsApi, count: int, shared: PodMetricsLists) -> list[PodMetricsSource]:
    sources = []
    for _ in range(count):
        source = PodMetricsSource.__new__(PodMetricsSource)
        source.api = api
        source.shared = shared
        sources.append(source)
    return sources


async def test_sessions_of_a_namespace_evaluating_together_ask_for_one_list() -> None:
    api = _MetricsApi(["web-1", "web-2", "db-1"])
    shared = PodMetricsLists()
    web, db, everything = _sources(api, 3, shared)
    batches = await asyncio.gather(
        web.observe("shop", [_pod("web-1"), _pod("web-2")], frozenset({"cpu"})),
        db.observe("shop", [_pod("db-1")], frozenset({"memory"})),
        everything.observe(
            "shop", [_pod("web-1"), _pod("web-2"), _pod("db-1")], frozenset({"cpu"})
        ),
    )
    assert api.asked == ["shop"]
    assert [(o.pod, o.metric, o.value) for o in batches[0].observations] == [
        ("web-1", "cpu", pytest.approx(0.001)),
        ("web-2", "cpu", pytest.approx(0.002)),
    ]
    assert [(o.pod, o.metric, o.value) for o in batches[1].observations] == [
        ("db-1", "memory", 1024.0)
    ]
    assert (batches[2].reporting, batches[2].asked) == (3, 3)


async def test_a_list_is_shared_only_while_young_and_per_namespace() -> None:
    api = _MetricsApi(["web-1"])
    shared = PodMetricsLists(fresh_seconds=0.05)
    first, second = _sources(api, 2, shared)
    await first.observe("shop", [_pod("web-1")], frozenset({"cpu"}))
    await second.observe("shop", [_pod("web-1")], frozenset({"cpu"}))
    await second.observe("other", [_pod("web-1")], frozenset({"cpu"}))
    assert api.asked == ["shop", "other"]
    await asyncio.sleep(0.1)
    await first.observe("shop", [_pod("web-1")], frozenset({"cpu"}))
    assert api.asked == ["shop", "other", "shop"]


async def test_a_failed_list_is_every_waiting_sessions_and_is_asked_again_next_time() -> None:
    api = _MetricsApi(["web-1"], failures=1)
    shared = PodMetricsLists()
    first, second = _sources(api, 2, shared)
    outcomes = await asyncio.gather(
        first.observe("shop", [_pod("web-1")], frozenset({"cpu"})),
        second.observe("shop", [_pod("web-1")], frozenset({"cpu"})),
        return_exceptions=True,
    )
    assert all(isinstance(o, MetricsUnavailableError) for o in outcomes)
    assert "HTTP 503" in str(outcomes[0])
    batch = await first.observe("shop", [_pod("web-1")], frozenset({"cpu"}))
    assert batch.reporting == 1
    assert api.asked == ["shop", "shop"]


async def test_a_session_that_stops_waiting_leaves_the_list_to_the_others() -> None:
    api = _MetricsApi(["web-1"])
    shared = PodMetricsLists()
    first, second = _sources(api, 2, shared)
    leaving = asyncio.create_task(first.observe("shop", [_pod("web-1")], frozenset({"cpu"})))
    staying = asyncio.create_task(second.observe("shop", [_pod("web-1")], frozenset({"cpu"})))
    await asyncio.sleep(0)
    leaving.cancel()
    batch = await staying
    assert batch.reporting == 1
    assert api.asked == ["shop"]


def test_sessions_of_a_namespace_are_put_on_one_schedule_an_interval_apart() -> None:
    def schedule(started: float) -> list[float]:
        instants = [started]
        for _ in range(3):
            instants.append(PodMetricsSource.next_evaluation("shop", instants[-1], 5.0))
        return instants

    runs = [schedule(started) for started in (100.0, 101.3, 103.9)]
    for instants in runs:  # never sooner than half an interval after an evaluation
        assert all(b - a >= 2.5 for a, b in itertools.pairwise(instants))
    # Started apart, each next evaluation is on the namespace's instants: they evaluate together.
    assert len({round(t % 5.0, 6) for instants in runs for t in instants[1:]}) == 1
    assert runs[0][2] == runs[1][1]
    first = runs[0][3]
    # Evaluated on time, each next evaluation is one interval later.
    assert PodMetricsSource.next_evaluation("shop", first, 5.0) == pytest.approx(first + 5.0)
    # Namespaces are spread over the interval, not all on one instant.
    phases = {
        round(PodMetricsSource.next_evaluation(f"ns-{i}", 1000.0, 5.0) % 5.0, 3) for i in range(10)
    }
    assert len(phases) == 10


async def test_the_watcher_evaluates_when_a_shared_source_schedules_it() -> None:
    api = _MetricsApi(["web-1"])
    source = _sources(api, 1, PodMetricsLists(fresh_seconds=0.0))[0]
    watcher = SpikeWatcher(lambda trigger, target: source)
    trigger = {
        "thresholds": [{"metric": "cpu", "above": "1"}],
        "metricsSource": "metricsServer",
        "interval": "5s",
    }
    parsed = parse_spec(spec(trigger=trigger))
    due = PodMetricsSource.next_evaluation("shop", 100.0, 5.0)
    for monotonic in (100.0, due - 0.01, due):
        await watcher.evaluate(
            namespace="shop",
            spec=parsed,
            reachable=[_pod("web-1")],
            current=SessionStatus(),
            now=NOW,
            monotonic=monotonic,
        )
    assert len(api.asked) == 2
    assert watcher.next_at == pytest.approx(due + 5.0)
