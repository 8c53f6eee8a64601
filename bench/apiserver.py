"""What the API server did while a benchmark ran: the requests it served (its own counter
`apiserver_request_total`, read from its /metrics as an admin) and the CPU time it used."""

from __future__ import annotations

import ssl
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness import cpu_seconds
from localcluster.controlplane import ControlPlane
from prometheus_client.parser import text_string_to_metric_families

# (verb, resource, subresource, code)
RequestKey = tuple[str, str, str, str]
# Long-running requests (watches, port-forward) are counted once, when they end: not load.
LONG_RUNNING = {"WATCH", "CONNECT"}


@dataclass(frozen=True)
class Reading:
    requests: Counter[RequestKey]
    cpu_s: float
    # (seconds, count) of the session status patches the API server served: its own measure
    # of how long each took, which grows with the size of the status it patches.
    status_patches: tuple[float, float] = (0.0, 0.0)


class ApiServerMeter:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.context = ssl.create_default_context(cafile=str(plane.ca_cert))
        self.context.load_cert_chain(str(plane.admin_pair.cert), str(plane.admin_pair.key))

    def cpu_profile(self, seconds: float) -> bytes:
        """The API server's own Go CPU profile over the next `seconds` (its /debug/pprof, served
        to an admin): what a burst makes it spend its CPU on."""
        with urllib.request.urlopen(
            f"{self.plane.server}/debug/pprof/profile?seconds={max(1, round(seconds))}",
            context=self.context,
            timeout=seconds + 30,
        ) as reply:
            return bytes(reply.read())

    def read(self) -> Reading:
        with urllib.request.urlopen(
            f"{self.plane.server}/metrics", context=self.context, timeout=10
        ) as reply:
            text = reply.read().decode()
        requests: Counter[RequestKey] = Counter()
        patches = [0.0, 0.0]
        for family in text_string_to_metric_families(text):
            if family.name == "apiserver_request_duration_seconds":
                for sample in family.samples:
                    labels = sample.labels
                    if (labels.get("verb"), labels.get("resource"), labels.get("subresource")) != (
                        "PATCH",
                        "profilingsessions",
                        "status",
                    ):
                        continue
                    if sample.name.endswith("_sum"):
                        patches[0] += sample.value
                    elif sample.name.endswith("_count"):
                        patches[1] += sample.value
            if family.name != "apiserver_request":
                continue
            for sample in family.samples:
                if sample.name != "apiserver_request_total":
                    continue
                labels = sample.labels
                if labels.get("verb") in LONG_RUNNING:
                    continue
                key = (
                    labels.get("verb", ""),
                    labels.get("resource", ""),
                    labels.get("subresource", ""),
                    labels.get("code", ""),
                )
                requests[key] += int(sample.value)
        return Reading(
            requests,
            cpu_seconds(self.plane.processes["kube-apiserver"].pid),
            (patches[0], patches[1]),
        )


def difference(
    before: Reading, after: Reading, seconds: float, own: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Requests and CPU between two readings, with the busiest kinds of request named.

    `own`: requests the benchmark itself made (e.g. {"GET profilingsessions": 12}), left out.
    """
    delta = after.requests.copy()
    delta.subtract(before.requests)
    kinds: Counter[str] = Counter()
    throttled = 0
    for (verb, resource, subresource, code), count in delta.items():
        if count <= 0:
            continue
        kinds[f"{verb} {resource}{'/' + subresource if subresource else ''}"] += count
        throttled += count if code == "429" else 0
    for kind, count in (own or {}).items():
        kinds[kind] = max(0, kinds[kind] - count)
    kinds = +kinds  # drops the kinds left at 0
    total = sum(kinds.values())

    def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
        count = after[1] - before[1]
        return round((after[0] - before[0]) / count * 1000, 1) if count > 0 else None

    return {
        "apiserver_requests": total,
        "apiserver_requests_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "apiserver_throttled_429": throttled,
        "apiserver_cpu_s": round(after.cpu_s - before.cpu_s, 2),
        "status_patch_mean_ms": mean_ms(before.status_patches, after.status_patches),
        "apiserver_busiest": dict(kinds.most_common(6)),
    }
