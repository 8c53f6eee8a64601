"""Armer: profiling turned on in the workloads owning a session's pods, and given back after."""

from __future__ import annotations

from spikeprof.adapters.kube import KubeError
from spikeprof.core.arming import ARMED_BY, PROFILING_ANNOTATION, WorkloadRef
from spikeprof.core.spec import parse_spec
from spikeprof.services.arming import Armer
from spikeprof.services.routes import EndpointRouter
from tests.unit.services.conftest import FakeProfiles, FakeWorkloads, pod, spec

WEB = WorkloadRef("Deployment", "shop", "web")
TARGET = parse_spec(
    spec(target={"kind": "dapr", "access": "direct", "enableProfiling": True})
).target
ON = {PROFILING_ANNOTATION: "true"}


async def _never_dialed(ip: str, port: int) -> bool:
    raise AssertionError("access direct does not probe the pod IP")


def _armer(workloads: FakeWorkloads, profiles: FakeProfiles | None = None) -> Armer:
    return Armer(
        "shop", "checkout", workloads, profiles or FakeProfiles(), EndpointRouter(_never_dialed)
    )


async def test_arming_patches_each_owning_workload_once_and_waits_for_new_pods() -> None:
    workloads = FakeWorkloads(owners={"web-1": WEB, "web-2": WEB})
    report = await _armer(workloads).reconcile([pod("web-1"), pod("web-2")], TARGET, False)
    assert (report.armed, report.reason) == (False, "Arming")
    assert report.message.startswith("Profiling is set on Deployment/web; waiting for 2 pod(s)")
    [(ref, body)] = workloads.patches
    assert ref == WEB
    assert body["spec"]["template"]["metadata"]["annotations"] == ON
    assert workloads.own[WEB][ARMED_BY] == "shop/checkout"


async def test_pods_created_with_profiling_that_serve_it_make_the_session_armed() -> None:
    workloads = FakeWorkloads(owners={"web-1": WEB})
    armer = _armer(workloads)
    await armer.reconcile([pod("web-1")], TARGET, False)
    report = await armer.reconcile([pod("web-1", annotations=ON)], TARGET, False)
    assert (report.armed, report.reason, report.workloads) == (True, "Armed", (WEB,))
    assert len(workloads.patches) == 1  # already armed: not patched again


async def test_a_pod_whose_endpoint_does_not_answer_keeps_the_session_arming() -> None:
    workloads = FakeWorkloads(owners={"web-1": WEB})
    report = await _armer(workloads, FakeProfiles(serving=False)).reconcile(
        [pod("web-1", annotations=ON)], TARGET, False
    )
    assert (report.armed, report.reason) == (False, "Arming")


async def test_a_dry_run_says_what_it_would_patch_and_patches_nothing() -> None:
    workloads = FakeWorkloads(owners={"web-1": WEB})
    report = await _armer(workloads).reconcile([pod("web-1")], TARGET, True)
    assert report.reason == "DryRun"
    assert "would set dapr.io/enable-profiling on Deployment/web" in report.message
    assert workloads.patches == []


async def test_pods_without_a_workload_are_named_as_bare() -> None:
    report = await _armer(FakeWorkloads()).reconcile([pod("lonely", owner=None)], TARGET, False)
    assert report.reason == "BarePods"
    assert report.message.startswith("Pod(s) lonely have no Deployment, StatefulSet or DaemonSet")


async def test_a_refused_patch_is_reported_not_raised() -> None:
    class Refusing(FakeWorkloads):
        async def patch(self, ref: WorkloadRef, body: object) -> None:  # type: ignore[override]
            raise KubeError("deployments.apps web is forbidden")

    report = await _armer(Refusing(owners={"web-1": WEB})).reconcile([pod("web-1")], TARGET, False)
    assert (report.reason, report.message) == (
        "PatchFailed",
        "Arming failed: deployments.apps web is forbidden.",
    )


async def test_the_last_session_to_disarm_gives_the_template_back_as_it_was() -> None:
    workloads = FakeWorkloads(owners={"web-1": WEB})
    armer = _armer(workloads)
    await armer.reconcile([pod("web-1")], TARGET, False)
    assert await armer.disarm([WEB]) == [WEB]
    assert PROFILING_ANNOTATION not in workloads.templates[WEB]
    assert ARMED_BY not in workloads.own[WEB]
