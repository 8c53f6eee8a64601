"""Arming a session: profiling turned on in the workloads of its pods, ahead of the spike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spikeprof.adapters.kube import KubeError
from spikeprof.core.arming import (
    WorkloadRef,
    arm_patch,
    bare_pods,
    disarm_patch,
    profiling_on,
)
from spikeprof.core.endpoints import EndpointError
from spikeprof.core.pods import PodInfo
from spikeprof.core.spec import TargetSpec
from spikeprof.services.routes import EndpointRouter


class Workloads(Protocol):
    """The workloads that own pods, and their pod templates (adapters.kube.WorkloadApi)."""

    async def owner_workload(self, namespace: str, pod: PodInfo) -> WorkloadRef | None: ...

    async def annotations(self, ref: WorkloadRef) -> tuple[dict[str, str], dict[str, str]]: ...

    async def patch(self, ref: WorkloadRef, body: Mapping[str, Any]) -> None: ...


class ProfileProbe(Protocol):
    async def serves(self, base_url: str) -> bool:
        """Whether a pprof index answers at `base_url`."""
        ...


@dataclass(frozen=True)
class ArmingReport:
    armed: bool
    reason: str  # Armed | Arming | DryRun | BarePods | NoPods | PatchFailed
    message: str
    workloads: tuple[WorkloadRef, ...] = field(default_factory=tuple)  # armed (or would be)


class Armer:
    def __init__(
        self,
        namespace: str,
        name: str,
        workloads: Workloads,
        fetcher: ProfileProbe,
        router: EndpointRouter,
    ) -> None:
        self.namespace = namespace
        self.session = f"{namespace}/{name}"
        self.workloads = workloads
        self.fetcher = fetcher
        self.router = router
        self._serving: set[str] = set()  # pod uids seen serving; a pod does not stop by itself

    async def reconcile(
        self, pods: Sequence[PodInfo], target: TargetSpec, dry_run: bool
    ) -> ArmingReport:
        """Arm every workload owning a selected pod; say whether every pod serves profiling."""
        if not pods:
            return ArmingReport(False, "NoPods", "No selected pod yet: nothing to arm.")
        try:
            refs = sorted(
                {
                    ref
                    for pod in pods
                    if (ref := await self.workloads.owner_workload(self.namespace, pod))
                }
            )
            patched: list[WorkloadRef] = []
            for ref in refs:
                template, annotations = await self.workloads.annotations(ref)
                body = arm_patch(template, annotations, self.session)
                if body is not None:
                    patched.append(ref)
                    if not dry_run:
                        await self.workloads.patch(ref, body)
        except KubeError as error:
            return ArmingReport(False, "PatchFailed", f"Arming failed: {error}.")
        names = ", ".join(str(r) for r in refs) or "no workload"
        if dry_run:
            would = ", ".join(str(r) for r in patched) or "nothing (already armed)"
            return ArmingReport(
                False,
                "DryRun",
                f"Dry run: would set dapr.io/enable-profiling on {would}; nothing changed.",
                tuple(refs),
            )
        bare = [name for name in bare_pods(pods) if not profiling_on(_annotations(pods, name))]
        if bare:
            return ArmingReport(
                False,
                "BarePods",
                f"Pod(s) {', '.join(bare)} have no Deployment, StatefulSet or DaemonSet to patch; "
                're-create them with dapr.io/enable-profiling: "true".',
                tuple(refs),
            )
        waiting = [p.name for p in pods if not await self._serving_profiles(p, target)]
        if waiting:
            return ArmingReport(
                False,
                "Arming",
                f"Profiling is set on {names}; waiting for {len(waiting)} pod(s) to be re-created "
                f"with it: {', '.join(waiting[:5])}{' ...' if len(waiting) > 5 else ''}.",
                tuple(refs),
            )
        return ArmingReport(
            True, "Armed", f"Profiling is on in every selected pod ({names}).", tuple(refs)
        )

    async def _serving_profiles(self, pod: PodInfo, target: TargetSpec) -> bool:
        """Created with profiling on, ready, and its endpoint answers (probed until it does)."""
        if not (profiling_on(pod.annotations) and pod.reachable):
            return False
        if pod.uid not in self._serving:
            try:
                endpoint = await self.router.endpoint(pod, target)
            except EndpointError:
                return False
            if await self.fetcher.serves(endpoint.base_url):
                self._serving.add(pod.uid)
        return pod.uid in self._serving

    async def disarm(self, refs: Sequence[WorkloadRef]) -> list[WorkloadRef]:
        """Drop this session from each workload; the last session restores it. Returns those."""
        restored = []
        for ref in refs:
            _, annotations = await self.workloads.annotations(ref)
            body = disarm_patch(annotations, self.session)
            if body is not None:
                await self.workloads.patch(ref, body)
                if "spec" in body:
                    restored.append(ref)
        return restored


def _annotations(pods: Sequence[PodInfo], name: str) -> dict[str, str]:
    return next((dict(p.annotations) for p in pods if p.name == name), {})
