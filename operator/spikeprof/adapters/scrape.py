"""The `scrape` metric source: each pod's own Prometheus /metrics, about 1 s resolution."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from spikeprof.core.observations import (
    CounterRates,
    MetricsUnavailableError,
    ObservationBatch,
)
from spikeprof.core.pods import PodInfo
from spikeprof.core.rules import Metric, Observation

# Go's standard process and runtime collectors, as daprd and any client_golang program expose.
GAUGES: dict[str, Metric] = {
    "process_resident_memory_bytes": "memory",
    "go_goroutines": "goroutines",
    "go_memstats_heap_inuse_bytes": "heap",
}
CPU_COUNTER = "process_cpu_seconds_total"
SCRAPE_TIMEOUT = 5.0
MAX_PROBLEMS = 5


class ScrapeSource:
    def __init__(
        self, client: httpx.AsyncClient, *, port: int, path: str, concurrency: int = 16
    ) -> None:
        self.client = client
        self.port = port
        self.path = path
        self.slots = asyncio.Semaphore(concurrency)
        self.rates = CounterRates()

    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch:
        del namespace  # each pod is asked directly
        results = await asyncio.gather(*(self._scrape(pod, metrics) for pod in pods))
        self.rates.forget_except({pod.name for pod in pods})
        observations = [obs for found, _ in results for obs in found]
        problems = [problem for _, problem in results if problem]
        if pods and len(problems) == len(pods):
            raise MetricsUnavailableError(
                f"no pod answered its /metrics on port {self.port}: {problems[0]}"
            )
        return ObservationBatch(
            observations=tuple(observations),
            reporting=sum(1 for found, _ in results if found),
            asked=len(pods),
            problems=tuple(problems[:MAX_PROBLEMS]),
        )

    async def _scrape(
        self, pod: PodInfo, metrics: frozenset[Metric]
    ) -> tuple[list[Observation], str | None]:
        url = f"http://{pod.ip}:{self.port}{self.path}"
        try:
            async with self.slots:
                reply = await self.client.get(url, timeout=SCRAPE_TIMEOUT)
            reply.raise_for_status()
            text = reply.text
        except httpx.HTTPError as error:
            return [], f"pod {pod.name}: {url}: {error!r}"
        at = time.time()
        found: list[Observation] = []
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == CPU_COUNTER and "cpu" in metrics:
                        rate = self.rates.rate(pod.name, sample.value, at)
                        if rate is not None:
                            found.append(Observation(pod.name, "cpu", rate, at))
                    elif sample.name in GAUGES and GAUGES[sample.name] in metrics:
                        found.append(Observation(pod.name, GAUGES[sample.name], sample.value, at))
        except ValueError as error:
            return [], f"pod {pod.name}: {url} is not Prometheus text: {error}"
        return found, None
