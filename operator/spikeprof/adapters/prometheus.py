"""The `prometheus` metric source: one PromQL query per metric per session per interval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.pods import PodInfo
from spikeprof.core.rules import Metric, Observation

# cAdvisor's container metrics as the kubelet exports them; $namespace is filled in per session.
# Results are per pod (`pod` label) for the whole namespace and filtered to the session's pods
# here, so the query stays one short string however many pods a session selects.
_CONTAINERS = 'namespace="$namespace", container!="", container!="POD"'
DEFAULT_QUERIES: dict[str, str] = {
    "cpu": f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{_CONTAINERS}}}[1m]))",
    "memory": f"sum by (pod) (container_memory_working_set_bytes{{{_CONTAINERS}}})",
    "goroutines": 'sum by (pod) (go_goroutines{namespace="$namespace"})',
    "heap": 'sum by (pod) (go_memstats_heap_inuse_bytes{namespace="$namespace"})',
}
QUERY_TIMEOUT = 10.0


class PrometheusSource:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        token: str | None,
        queries: Mapping[str, str],
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.queries: dict[str, str] = {**DEFAULT_QUERIES, **queries}

    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch:
        wanted = {pod.name for pod in pods}
        observations: list[Observation] = []
        for metric in sorted(metrics):
            query = self.queries[metric].replace("$namespace", namespace)
            for pod, value, at in await self._query(query):
                if pod in wanted:
                    observations.append(Observation(pod, metric, value, at))
        return ObservationBatch(
            observations=tuple(observations),
            reporting=len({o.pod for o in observations}),
            asked=len(pods),
        )

    async def _query(self, query: str) -> list[tuple[str, float, float]]:
        url = f"{self.base_url}/api/v1/query"
        try:
            reply = await self.client.get(
                url, params={"query": query}, headers=self.headers, timeout=QUERY_TIMEOUT
            )
        except httpx.HTTPError as error:
            raise MetricsUnavailableError(f"Prometheus at {self.base_url}: {error!r}") from None
        try:
            body: dict[str, Any] = reply.json()
        except ValueError:
            raise MetricsUnavailableError(
                f"Prometheus at {self.base_url} answered HTTP {reply.status_code} without JSON"
            ) from None
        if reply.status_code != 200 or body.get("status") != "success":
            raise MetricsUnavailableError(
                f"Prometheus rejected the query {query!r}: HTTP {reply.status_code} "
                f"{body.get('errorType', '')}: {body.get('error', '')}"
            )
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise MetricsUnavailableError(
                f"the query {query!r} must return an instant vector, not {data.get('resultType')}"
            )
        rows = []
        for item in data.get("result") or ():
            pod = (item.get("metric") or {}).get("pod")
            at, value = item.get("value") or (0, "NaN")
            if pod is None:
                raise MetricsUnavailableError(
                    f"the query {query!r} returns series without a pod label; aggregate "
                    "with sum by (pod)"
                )
            rows.append((str(pod), float(value), float(at)))
        return rows
