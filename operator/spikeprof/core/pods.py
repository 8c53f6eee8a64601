"""What the operator needs to know of a pod, read from its API body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core.quantities import parse_quantity
from spikeprof.core.rules import Resources


@dataclass(frozen=True)
class ContainerRun:
    """One container's restarts as the kubelet reports them (status.containerStatuses[])."""

    name: str
    restart_count: int
    last_reason: str | None = None  # lastState.terminated.reason: OOMKilled, Error, ...
    last_exit_code: int | None = None  # lastState.terminated.exitCode
    last_finished_at: str | None = None  # lastState.terminated.finishedAt (RFC 3339)
    started_at: str | None = None  # state.running.startedAt: when the current run began


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    node: str | None
    ip: str | None
    phase: str | None
    ready: bool
    deleting: bool
    containers: tuple[str, ...]
    resources: Resources = field(default_factory=Resources)
    owner: tuple[str, str] | None = None  # (kind, name) of the controller that made the pod
    runs: tuple[ContainerRun, ...] = ()  # per container: restart count and the last exit
    created: str | None = None  # metadata.creationTimestamp (RFC 3339)

    @property
    def reachable(self) -> bool:
        """Running, ready, addressed and not on its way out: worth dialing."""
        return self.phase == "Running" and self.ready and bool(self.ip) and not self.deleting


def pod_info(body: Mapping[str, Any]) -> PodInfo:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    return PodInfo(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        node=spec.get("nodeName"),
        ip=status.get("podIP"),
        phase=status.get("phase"),
        ready=ready,
        deleting=meta.get("deletionTimestamp") is not None,
        containers=tuple(c.get("name", "") for c in spec.get("containers") or ()),
        resources=_resources(spec.get("containers") or ()),
        owner=next(
            (
                (str(o.get("kind")), str(o.get("name")))
                for o in meta.get("ownerReferences") or ()
                if o.get("controller")
            ),
            None,
        ),
        runs=tuple(_run(c) for c in status.get("containerStatuses") or ()),
        created=meta.get("creationTimestamp"),
    )


def _run(raw: Mapping[str, Any]) -> ContainerRun:
    terminated = (raw.get("lastState") or {}).get("terminated") or {}
    exit_code = terminated.get("exitCode")
    return ContainerRun(
        name=str(raw.get("name", "")),
        restart_count=int(raw.get("restartCount") or 0),
        last_reason=terminated.get("reason"),
        last_exit_code=int(exit_code) if exit_code is not None else None,
        last_finished_at=terminated.get("finishedAt"),
        started_at=((raw.get("state") or {}).get("running") or {}).get("startedAt"),
    )


def _summed(containers: Sequence[Mapping[str, Any]], kind: str, resource: str) -> float | None:
    """The pod's total, or None when any container leaves it unset (no bound to compare with)."""
    total = 0.0
    for container in containers:
        value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
        if value is None:
            return None
        try:
            total += parse_quantity(str(value))
        except ValueError:
            return None
    return total if containers else None


def _resources(containers: Sequence[Mapping[str, Any]]) -> Resources:
    return Resources(
        cpu_limit=_summed(containers, "limits", "cpu"),
        cpu_request=_summed(containers, "requests", "cpu"),
        memory_limit=_summed(containers, "limits", "memory"),
        memory_request=_summed(containers, "requests", "memory"),
    )
