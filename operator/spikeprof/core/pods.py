"""What the operator needs to know of a pod, read from its API body.

The operator keeps one record per pod of every namespace it serves (tens of thousands), so the
records are compact: slotted, and the label and annotation maps and resource totals that many
pods have alike (replicas of one workload) are one shared object (`Sharing`).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core.quantities import parse_quantity
from spikeprof.core.rules import Resources


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """One container's restarts as the kubelet reports them (status.containerStatuses[])."""

    name: str
    restart_count: int
    last_reason: str | None = None  # lastState.terminated.reason: OOMKilled, Error, ...
    last_exit_code: int | None = None  # lastState.terminated.exitCode
    last_finished_at: str | None = None  # lastState.terminated.finishedAt (RFC 3339)
    started_at: str | None = None  # state.running.startedAt: when the current run began


@dataclass(frozen=True, slots=True)
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


# Annotations the operator reads (Dapr's, and its own pprof port and path); the others (such
# as kubectl's last-applied-configuration, often kilobytes) are not kept.
KEPT_ANNOTATION_PREFIXES = ("dapr.io/", "spikeprof.io/")


class _SharedMap(dict[str, str]):
    """A label or annotation map that pods with the same one share; never changed once made
    (PodInfo hands it out as a read-only Mapping). A dict subclass only to be weakly referenced:
    a map no pod uses any more is dropped from the pool."""

    __slots__ = ("__weakref__",)


_EMPTY_MAP: Mapping[str, str] = _SharedMap()


class Sharing:
    """One object for each distinct label map, annotation map and Resources among the pods it
    has seen, while any pod holds it: replicas of a workload cost one map, not one each."""

    def __init__(self) -> None:
        self._maps: weakref.WeakValueDictionary[tuple[tuple[str, str], ...], _SharedMap] = (
            weakref.WeakValueDictionary()
        )
        self._resources: weakref.WeakValueDictionary[Resources, Resources] = (
            weakref.WeakValueDictionary()
        )

    def map(self, raw: Mapping[str, str]) -> Mapping[str, str]:
        if not raw:
            return _EMPTY_MAP
        key = tuple(raw.items())
        found = self._maps.get(key)
        if found is None:
            found = _SharedMap((sys.intern(str(k)), str(v)) for k, v in key)
            self._maps[key] = found
        return found

    def resources(self, value: Resources) -> Resources:
        return self._resources.setdefault(value, value)


def pod_info(body: Mapping[str, Any], sharing: Sharing | None = None) -> PodInfo:
    """The record of a pod from its API JSON; `sharing` lets records share what is alike."""
    share = sharing or Sharing()
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(KEPT_ANNOTATION_PREFIXES)
    }
    node, phase = spec.get("nodeName"), status.get("phase")
    return PodInfo(
        namespace=sys.intern(str(meta.get("namespace", ""))),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        labels=share.map(meta.get("labels") or {}),
        annotations=share.map(annotations),
        node=sys.intern(node) if node else node,
        ip=status.get("podIP"),
        phase=sys.intern(phase) if phase else phase,
        ready=ready,
        deleting=meta.get("deletionTimestamp") is not None,
        containers=tuple(sys.intern(str(c.get("name", ""))) for c in spec.get("containers") or ()),
        resources=share.resources(_resources(spec.get("containers") or ())),
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
        name=sys.intern(str(raw.get("name", ""))),
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
