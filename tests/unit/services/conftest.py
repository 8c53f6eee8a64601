"""In-memory fakes of the adapters the services talk to, and the pods and specs they see.

Each fake implements the Protocol its service declares (services.status_outbox.StatusPatcher,
services.arming.Workloads and ProfileProbe, services.capture.ProfileSource,
services.triggers.MetricSource, services.session's CaptureRunner, WorkloadArmer and Outputs,
services.notify.Poster and ReadSecret),
keeps what it was asked in lists for the tests to read, and can be told to fail the way the
real adapter does (with the error the real adapter raises). The real adapters are covered by
the e2e tests against a real API server and real pods.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spikeprof.adapters.kube import ApiUnavailableError, KubeError
from spikeprof.adapters.pod_http import Fetched
from spikeprof.adapters.volume import VolumeStore
from spikeprof.adapters.webhook import WebhookError
from spikeprof.core import merge_patch
from spikeprof.core.arming import WorkloadRef
from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.planner import CaptureRequest
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import CaptureOutcome, PodOutcome, ProfileOutcome
from spikeprof.core.rules import Metric, Observation, Resources
from spikeprof.core.spec import ProfileRequest, SessionSpec, TargetSpec
from spikeprof.core.status import Verdict
from spikeprof.services.arming import ArmingReport
from spikeprof.services.capture import CaptureJob, Capturer, ProfileSource
from spikeprof.services.notify import Deliveries, DeliveryPolicy, Notifier
from spikeprof.services.routes import EndpointRouter
from spikeprof.telemetry import Metrics
from tests.unit.pprof_proto import ProfileBuilder, call_chain

NOW = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.UTC)


def heap_profile() -> bytes:
    """A small heap profile: two functions, one sample of 4 KiB in use."""
    builder = ProfileBuilder().sample_type("inuse_space", "bytes")
    call_chain(builder, ["main.main", "main.grow"]).sample([2, 1], [4096])
    return builder.gzipped()


def pod(name: str, *, ip: str | None = "10.0.0.1", **changes: Any) -> PodInfo:
    values: dict[str, Any] = {
        "namespace": "shop",
        "name": name,
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
        "annotations": {},
        "node": "node-1",
        "ip": ip,
        "phase": "Running",
        "ready": True,
        "deleting": False,
        "containers": ("app",),
        "resources": Resources(memory_limit=2**30),
        "owner": ("ReplicaSet", "web-5d8f"),
    }
    values.update(changes)
    return PodInfo(**values)


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "target": {"kind": "pprof", "port": 6060, "access": "direct"},
        "profiles": [{"type": "heap"}],
        "output": {"volume": {}},
    }
    base.update(changes)
    return base


@dataclass
class FakeStatusWriter:
    """Merge-patches a status held in memory, as the API server would."""

    status: dict[str, Any] = field(default_factory=dict)
    patches: list[Mapping[str, Any]] = field(default_factory=list)
    away: bool = False
    fail_with: Exception | None = None

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        if self.away:
            raise ApiUnavailableError("the API server does not answer")
        if self.fail_with is not None:
            raise self.fail_with
        self.patches.append(status)
        self.status = merge_patch.apply(self.status, status)


@dataclass
class FakeCapturer:
    """Records each capture job and answers with one successful heap profile per pod."""

    jobs: list[tuple[CaptureJob, list[str]]] = field(default_factory=list)

    async def discard_leftovers(self, namespace: str, session: str) -> int:
        return 0

    async def run(self, job: CaptureJob, pods: Sequence[PodInfo]) -> CaptureOutcome:
        self.jobs.append((job, [p.name for p in pods]))
        await job.recorded()  # as a pod's commit does: published only once recorded
        heap = ProfileOutcome("heap", file="heap.pb.gz", bytes=10, sha256="x")
        outcomes = tuple(
            PodOutcome(
                p.name, p.node, f"{job.namespace}/{job.session}/{p.name}/{job.request.id}", (heap,)
            )
            for p in pods
        )
        return CaptureOutcome(job.request, outcomes)


@dataclass
class FakeArmer:
    report: ArmingReport = field(
        default_factory=lambda: ArmingReport(True, "Armed", "Profiling is on.")
    )
    disarmed: list[list[WorkloadRef]] = field(default_factory=list)

    async def reconcile(
        self, pods: Sequence[PodInfo], target: TargetSpec, dry_run: bool
    ) -> ArmingReport:
        return self.report

    async def disarm(self, refs: Sequence[WorkloadRef]) -> list[WorkloadRef]:
        self.disarmed.append(list(refs))
        return list(refs)


@dataclass
class FakeOutputs:
    upload: Verdict | None = None
    refuse: str | None = None

    async def settle(self, spec: SessionSpec, now: datetime.datetime) -> Verdict | None:
        return self.upload

    async def refusal(self, spec: SessionSpec) -> str | None:
        return self.refuse


@dataclass
class FakeMetricSource:
    """Answers each `observe` with the next of `values` (pod -> memory bytes), or an error."""

    values: list[dict[str, float] | Exception] = field(default_factory=list)
    asked: list[list[str]] = field(default_factory=list)

    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch:
        self.asked.append([p.name for p in pods])
        answer = self.values.pop(0)
        if isinstance(answer, Exception):
            raise answer
        observations = tuple(
            Observation(name, "memory", value, NOW.timestamp()) for name, value in answer.items()
        )
        return ObservationBatch(observations, reporting=len(answer), asked=len(pods))


def source_down(message: str) -> MetricsUnavailableError:
    return MetricsUnavailableError(message)


@dataclass
class FakeWorkloads:
    """Deployments keyed by name, each with its pod template's and its own annotations."""

    owners: dict[str, WorkloadRef | None] = field(default_factory=dict)  # pod name -> owner
    templates: dict[WorkloadRef, dict[str, str]] = field(default_factory=dict)
    own: dict[WorkloadRef, dict[str, str]] = field(default_factory=dict)
    patches: list[tuple[WorkloadRef, Mapping[str, Any]]] = field(default_factory=list)

    async def owner_workload(self, namespace: str, pod: PodInfo) -> WorkloadRef | None:
        return self.owners.get(pod.name)

    async def annotations(self, ref: WorkloadRef) -> tuple[dict[str, str], dict[str, str]]:
        return dict(self.templates.get(ref, {})), dict(self.own.get(ref, {}))

    async def patch(self, ref: WorkloadRef, body: Mapping[str, Any]) -> None:
        self.patches.append((ref, body))
        own = self.own.setdefault(ref, {})
        for key, value in (body.get("metadata") or {}).get("annotations", {}).items():
            if value is None:
                own.pop(key, None)
            else:
                own[key] = value
        template = (body.get("spec") or {}).get("template", {}).get("metadata", {})
        for key, value in template.get("annotations", {}).items():
            if value is None:
                self.templates.setdefault(ref, {}).pop(key, None)
            else:
                self.templates.setdefault(ref, {})[key] = value


@dataclass
class FakeProfiles:
    """A pod's pprof endpoint: serves the index, and each profile as the given bytes."""

    body: bytes = field(default_factory=heap_profile)
    serving: bool = True
    failures: dict[str, Exception] = field(default_factory=dict)  # profile type -> error
    fetched: list[tuple[str, str]] = field(default_factory=list)  # (base url, type)

    async def serves(self, base_url: str) -> bool:
        return self.serving

    async def fetch(
        self,
        base_url: str,
        request: ProfileRequest,
        destination: Path,
        *,
        max_bytes: int,
        fetch_timeout: float,
    ) -> Fetched:
        self.fetched.append((base_url, request.type))
        failure = self.failures.get(request.type)
        if failure is not None:
            raise failure
        await asyncio.to_thread(destination.write_bytes, self.body)
        return Fetched(bytes=len(self.body), sha256="0" * 64, seconds=0.01)


def pending_capture(request: CaptureRequest) -> dict[str, Any]:
    return {"pendingCapture": request.to_status(), "phase": "Capturing"}


@pytest.fixture
def writer() -> FakeStatusWriter:
    return FakeStatusWriter()


@dataclass
class FakeSecrets:
    """Secrets by (namespace, name), read as adapters.kube.SecretReader reads them."""

    data: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    reads: list[tuple[str, str]] = field(default_factory=list)

    async def read(self, namespace: str, name: str) -> dict[str, str]:
        self.reads.append((namespace, name))
        if (namespace, name) not in self.data:
            raise KubeError(f"Secret {namespace}/{name} does not exist")
        return dict(self.data[(namespace, name)])


@dataclass
class FakePoster:
    """A webhook receiver: each post answers with the next of `answers` (None: delivered), or
    with `hang` never answers (as a receiver that accepts and says nothing)."""

    answers: list[WebhookError | None] = field(default_factory=list)
    hang: bool = False
    posts: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    async def post(self, url: str, payload: Mapping[str, Any]) -> None:
        self.posts.append((url, payload))
        if self.hang:
            await asyncio.Event().wait()
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


@dataclass
class NotifierParts:
    """A real Notifier over fakes, with what it slept and the deliveries it started."""

    secrets: FakeSecrets = field(default_factory=FakeSecrets)
    poster: FakePoster = field(default_factory=FakePoster)
    deliveries: Deliveries = field(default_factory=Deliveries)
    metrics: Metrics = field(default_factory=Metrics.create)
    pauses: list[float] = field(default_factory=list)
    attempts: int = 3

    def notifier(self, ui_url: str | None = None) -> Notifier:
        async def sleep(seconds: float) -> None:
            self.pauses.append(seconds)

        return Notifier(
            "shop",
            "checkout",
            read_secret=self.secrets.read,
            poster=self.poster,
            deliveries=self.deliveries,
            policy=DeliveryPolicy(attempts=self.attempts),
            metrics=self.metrics,
            artifact_root=Path("/var/lib/spikeprof"),
            ui_url=ui_url,
            sleep=sleep,
        )

    def counted(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def _never_probed(ip: str, port: int) -> bool:
    raise AssertionError("access direct does not probe the pod IP")


def real_capturer(root: Path, fetcher: ProfileSource) -> Capturer:
    """The real capturer over a volume at `root`, for sessions whose pods are reached directly
    (target.access: direct, as `spec` has it: the pod IP is never probed)."""
    return Capturer(
        store=VolumeStore(root),
        fetcher=fetcher,
        router=EndpointRouter(_never_probed),
        metrics=Metrics.create(),
        operator_slots=asyncio.Semaphore(4),
    )
