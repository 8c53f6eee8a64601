"""The Kubernetes API, through kubernetes_asyncio: the only module that imports the client.

kopf does the watching and the events; this adapter writes session status from long-running
daemons (where kopf's own `patch` is not applied) and maps API errors to the operator's own.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.pods import PodInfo
from spikeprof.core.quantities import parse_quantity
from spikeprof.core.rules import Metric, Observation

GROUP = "spikeprof.io"
VERSION = "v1alpha1"
PLURAL = "profilingsessions"


class SessionGoneError(Exception):
    """The session no longer exists: whatever was to be written about it has no home."""


class KubeError(Exception):
    """The API server refused or failed a request; the message says which and why."""


async def connect(kubeconfig: str | None = None) -> Any:
    """An API client: in-cluster when running in a pod, else from the kubeconfig."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG"),
            client_configuration=configuration,
        )
    return client.ApiClient(configuration)


class SessionStatusWriter:
    def __init__(self, api_client: Any) -> None:
        self.api = client.CustomObjectsApi(api_client)

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch `.status` of a ProfilingSession (None values delete keys)."""
        try:
            await self.api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                # The generated default is JSON Patch; a status fragment is a merge patch.
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            )
        except ApiException as error:
            if error.status == 404:
                raise SessionGoneError(f"{namespace}/{name}") from None
            raise KubeError(
                f"patching status of ProfilingSession {namespace}/{name} failed: "
                f"HTTP {error.status} {error.reason}: {error.body!r:.300}"
            ) from None


USAGE_METRICS: tuple[Metric, ...] = ("cpu", "memory")  # what PodMetrics reports


class PodMetricsSource:
    """The `metricsServer` source: PodMetrics from metrics.k8s.io, one list per session."""

    def __init__(self, api_client: Any) -> None:
        self.api = client.CustomObjectsApi(api_client)

    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch:
        wanted = {pod.name for pod in pods}
        try:
            listing = await self.api.list_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", namespace, "pods"
            )
        except ApiException as error:
            hint = " (is metrics-server installed?)" if error.status in (404, 503) else ""
            raise MetricsUnavailableError(
                f"metrics.k8s.io PodMetrics in {namespace}: HTTP {error.status} "
                f"{error.reason}{hint}"
            ) from None
        observations: list[Observation] = []
        for item in listing.get("items") or ():
            name = (item.get("metadata") or {}).get("name")
            if name not in wanted:
                continue
            at = _timestamp(item.get("timestamp"))
            usage = [c.get("usage") or {} for c in item.get("containers") or ()]
            for metric in USAGE_METRICS:
                if metric in metrics and usage:
                    try:
                        value = sum(parse_quantity(str(u.get(metric, "0"))) for u in usage)
                    except ValueError:
                        continue  # one malformed item must not hide the other pods
                    observations.append(Observation(name, metric, value, at))
        return ObservationBatch(
            observations=tuple(observations),
            reporting=len({o.pod for o in observations}),
            asked=len(pods),
        )


def _timestamp(text: Any) -> float:
    if not text:
        return time.time()
    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
