"""Building the metric source a session asks for, from the operator's shared clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from spikeprof.adapters.kube import PodMetricsLists, PodMetricsSource
from spikeprof.adapters.prometheus import PrometheusSource
from spikeprof.adapters.scrape import ScrapeSource
from spikeprof.core.observations import MetricsUnavailableError
from spikeprof.core.spec import TargetSpec, TriggerSpec
from spikeprof.services.triggers import MetricSource

DAPR_METRICS_PORT = 9090  # daprd's --metrics-port default


@dataclass(frozen=True)
class SourceFactory:
    http: httpx.AsyncClient
    api_client: Any
    prometheus_url: str | None
    prometheus_token: str | None
    # One PodMetrics list per namespace and evaluation for all the sessions of the namespace.
    pod_metrics: PodMetricsLists = field(default_factory=PodMetricsLists)

    def __call__(self, trigger: TriggerSpec, target: TargetSpec) -> MetricSource:
        if trigger.source == "metricsServer":
            return PodMetricsSource(self.api_client, self.pod_metrics)
        if trigger.source == "prometheus":
            if not self.prometheus_url:
                raise MetricsUnavailableError(
                    "the operator has no Prometheus address: set SPIKEPROF_PROMETHEUS_URL"
                )
            return PrometheusSource(
                self.http,
                base_url=self.prometheus_url,
                token=self.prometheus_token,
                queries=dict(trigger.queries),
            )
        port = trigger.scrape_port or (DAPR_METRICS_PORT if target.kind == "dapr" else target.port)
        if port is None:
            raise MetricsUnavailableError(
                "scrape needs a port: set spec.trigger.scrape.port (or spec.target.port)"
            )
        return ScrapeSource(self.http, port=port, path=trigger.scrape_path)
