"""Turning Dapr's profiling on in the workloads a session selects, and back off afterwards.

Dapr's sidecar injector reads `dapr.io/enable-profiling` only when a pod is created, so the
annotation goes on the owning workload's pod template (a rollout). The workload remembers what
its template had (`spikeprof.io/profiling-original`) and which sessions armed it
(`spikeprof.io/armed-by`): the last session to end restores the template exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spikeprof.core.pods import PodInfo

PROFILING_ANNOTATION = "dapr.io/enable-profiling"
LEGACY_ANNOTATION = "dapr.io/profiling"  # older Dapr releases
ARMED_BY = "spikeprof.io/armed-by"
ORIGINAL = "spikeprof.io/profiling-original"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True, order=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_workload(text: str, namespace: str) -> WorkloadRef:
    """`Deployment/web` (as status.armedWorkloads lists it) in the session's namespace."""
    kind, _, name = text.partition("/")
    return WorkloadRef(kind, namespace, name)


def profiling_on(annotations: Mapping[str, str]) -> bool:
    return any(
        annotations.get(k, "").lower() == "true" for k in (PROFILING_ANNOTATION, LEGACY_ANNOTATION)
    )


def bare_pods(pods: Iterable[PodInfo]) -> list[str]:
    """Pods no workload controller owns: nothing can be patched to re-create them armed."""
    return sorted(p.name for p in pods if p.owner is None)


def armed_by(workload_annotations: Mapping[str, str]) -> list[str]:
    raw = workload_annotations.get(ARMED_BY, "")
    return [s for s in raw.split(",") if s]


def arm_patch(
    template_annotations: Mapping[str, str],
    workload_annotations: Mapping[str, str],
    session: str,
) -> dict[str, Any] | None:
    """The merge patch arming a workload for `session` ("ns/name"); None if it already is."""
    sessions = armed_by(workload_annotations)
    if session in sessions and profiling_on(template_annotations):
        return None
    metadata: dict[str, Any] = {ARMED_BY: ",".join(sorted({*sessions, session}))}
    if ORIGINAL not in workload_annotations:
        # Remember the template's own value (or its absence) before the first session changes it.
        metadata[ORIGINAL] = json.dumps(
            {PROFILING_ANNOTATION: template_annotations.get(PROFILING_ANNOTATION)}
        )
    return {
        "metadata": {"annotations": metadata},
        "spec": {"template": {"metadata": {"annotations": {PROFILING_ANNOTATION: "true"}}}},
    }


def disarm_patch(workload_annotations: Mapping[str, str], session: str) -> dict[str, Any] | None:
    """The merge patch a session's end makes: drop it, and restore if it was the last one."""
    sessions = armed_by(workload_annotations)
    if session not in sessions:
        return None
    rest = [s for s in sessions if s != session]
    if rest:
        return {"metadata": {"annotations": {ARMED_BY: ",".join(rest)}}}
    original = json.loads(workload_annotations.get(ORIGINAL) or "{}")
    return {
        "metadata": {"annotations": {ARMED_BY: None, ORIGINAL: None}},
        # null removes the annotation when the template had none: exactly as it was.
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {PROFILING_ANNOTATION: original.get(PROFILING_ANNOTATION)}
                }
            }
        },
    }
