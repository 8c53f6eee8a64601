"""Running one capture: every requested profile from every selected pod, bounded and atomic."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spikeprof.adapters.pod_http import Fetched
from spikeprof.adapters.volume import StagedCapture, VolumeStore
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import build_metadata
from spikeprof.core.endpoints import Endpoint, EndpointError
from spikeprof.core.planner import CaptureRequest
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import (
    CaptureOutcome,
    FailureReason,
    PodOutcome,
    ProfileError,
    ProfileOutcome,
)
from spikeprof.core.spec import ProfileRequest, SessionSpec
from spikeprof.pprof.check import NotAProfileError, check_file
from spikeprof.services.analysis import Analyser, AnalysisCrashedError, InThreads
from spikeprof.services.readable import Readable, growth_between, make_readable
from spikeprof.services.routes import EndpointRouter
from spikeprof.telemetry import Metrics

# Failures after which a pod that has disappeared is the better explanation.
# Profiles decoded and analysed at once (summary, flame graph), across all captures: a decoded
# profile holds tens of MiB for a large one, and the work is pure CPU, so more at once would
# hold more memory without finishing sooner. Fetching and writing are not bounded
# by it: profiles stream to disk as they come.
ANALYSES_AT_ONCE = 2
# Seconds to wait for the pod watch to report a deletion after a pod stopped answering.
POD_GONE_GRACE = 2.0
_GONE_HINTS = {FailureReason.CONNECTION_REFUSED, FailureReason.TIMEOUT, FailureReason.UNREACHABLE}


class ProfileSource(Protocol):
    """Fetches one profile from a pod's pprof endpoint (adapters.pod_http.ProfileFetcher)."""

    async def fetch(
        self,
        base_url: str,
        request: ProfileRequest,
        destination: Path,
        *,
        max_bytes: int,
        fetch_timeout: float,
    ) -> Fetched: ...

    async def serves(self, base_url: str) -> bool: ...


async def _at_once() -> None:
    return None


class Joining:
    """Pods added to a capture while it runs (alerts that arrive meanwhile join it).

    Open until its owner closes it (the capture runs until then, even with no pod in flight,
    so that a burst of alerts is one capture and a few status writes, not one per alert): from
    then on `add` refuses, and what was refused waits for the session's next capture. Nothing
    is lost in between: the capture takes what was added before it closes, in the same step of
    the event loop.
    """

    def __init__(self) -> None:
        self.open = True
        self._added: list[PodInfo] = []
        self.arrived = asyncio.Event()

    def add(self, pods: Sequence[PodInfo]) -> bool:
        if not self.open:
            return False
        self._added.extend(pods)
        self.arrived.set()
        return True

    def close(self) -> None:
        """No more pods: the capture ends once those it has are done."""
        self.open = False
        self.arrived.set()

    def take(self) -> list[PodInfo]:
        taken, self._added = self._added, []
        self.arrived.clear()
        return taken


@dataclass(frozen=True)
class CaptureJob:
    namespace: str
    session: str
    spec: SessionSpec
    request: CaptureRequest
    operator_version: str
    pod_exists: Callable[[PodInfo], bool]  # asked when a pod stops answering mid-capture
    baseline_id: str | None = None  # the session's baseline capture, to diff against
    # The pod as the watch sees it now (None once gone): a leak pair asks whether its container
    # restarted between the two profiles.
    pod_now: Callable[[PodInfo], PodInfo | None] | None = None
    # Raises once this replica may no longer act in the namespace: nothing is committed then,
    # and the new owner resumes the capture under the same id.
    fence: Callable[[], None] = lambda: None
    # Returns once the capture is recorded as started in status (raises if it cannot be):
    # profiles are fetched meanwhile, and published only after it.
    recorded: Callable[[], Awaitable[None]] = _at_once
    # Pods that join while it runs (None: the capture is the pods it was given).
    joining: Joining | None = None
    # The keys of the alerts that asked for a pod, as the capture has grown so far.
    alerts_for: Callable[[str], tuple[str, ...]] = lambda pod: ()
    # A list: each pod's commit (which waits for job.recorded()) runs in a task put there, and
    # the pod's outcome is returned once its profiles are taken and analysed, so that the
    # capture's end is decided, and the next capture starts, while the commits wait for status
    # writes. None: each pod is committed before its outcome is returned.
    commits: list[asyncio.Task[None]] | None = None


@dataclass
class Capturer:
    store: VolumeStore
    fetcher: ProfileSource
    router: EndpointRouter
    metrics: Metrics
    operator_slots: asyncio.Semaphore  # shared by all sessions: the operator's own bound
    analysis_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(ANALYSES_AT_ONCE)
    )
    # Where profiles are decoded, summarised and drawn (see services.analysis).
    analysis: Analyser = field(default_factory=InThreads)
    # Staging before the first profile request gets threads of its own: in a burst, the
    # default executor's are busy analysing and fsyncing, and a pod's request would queue.
    staging_lane: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="spikeprof-staging")
    )

    async def discard_leftovers(self, namespace: str, session: str) -> int:
        """Remove staging directories that earlier attempts left (see VolumeStore)."""
        return len(await asyncio.to_thread(self.store.discard_staging, namespace, session))

    async def run(self, job: CaptureJob, pods: Sequence[PodInfo]) -> CaptureOutcome:
        if not pods:
            return CaptureOutcome(job.request, problem="no selected pod is running and ready")
        started = time.monotonic()
        session_slots = asyncio.Semaphore(job.spec.limits.max_concurrent)

        async def bounded(pod: PodInfo) -> PodOutcome:
            async with session_slots, self.operator_slots:
                return await self._capture_pod(job, pod)

        if job.joining is None:
            outcomes = await asyncio.gather(*(bounded(pod) for pod in pods))
        else:
            outcomes = await _with_joiners(job.joining, pods, bounded)
        outcome = CaptureOutcome(job.request, tuple(outcomes))
        self.metrics.capture_seconds.observe(time.monotonic() - started)
        self.metrics.captures.labels(job.request.trigger, outcome.result).inc()
        return outcome

    async def _capture_pod(self, job: CaptureJob, pod: PodInfo) -> PodOutcome:
        key = ArtifactKey(job.namespace, job.session, pod.name, job.request.id)
        # One trip to a worker thread before the first profile request, not two.
        staged = await asyncio.get_running_loop().run_in_executor(
            self.staging_lane, self.store.stage_unless_complete, key
        )
        if staged is None:
            # Finished before an operator restart: report it as it was, do not take it again.
            metadata = await asyncio.to_thread(self.store.read_metadata, key)
            return _outcome_from_metadata(pod, key, metadata)
        try:
            try:
                endpoint = await self.router.endpoint(pod, job.spec.target)
            except EndpointError as problem:
                endpoint = Endpoint("", None, job.spec.target.access)
                failure = ProfileError(FailureReason.NO_ENDPOINT, str(problem))
                results = tuple(ProfileOutcome(p.type, failure=failure) for p in job.spec.profiles)
            else:
                results = tuple(
                    await asyncio.gather(
                        *(self._profile(job, pod, endpoint, staged, p) for p in job.spec.profiles)
                    )
                )
            metadata = build_metadata(
                key=key,
                request=job.request,
                pod=pod,
                endpoint=endpoint,
                requests=job.spec.profiles,
                outcomes=results,
                finished_at=datetime.datetime.now(datetime.UTC),
                operator_version=job.operator_version,
                alerts=job.alerts_for(pod.name),
            )
        except BaseException:
            # Cancelled (operator stopping) or broken: leave nothing half-written behind.
            await asyncio.to_thread(staged.discard)
            raise
        commit = self._commit(job, staged, metadata, results)
        if job.commits is None:
            await commit
        else:
            job.commits.append(asyncio.create_task(commit))
        return PodOutcome(pod.name, pod.node, key.relative_path, results)

    async def _commit(
        self,
        job: CaptureJob,
        staged: StagedCapture,
        metadata: dict[str, Any],
        results: tuple[ProfileOutcome, ...],
    ) -> None:
        """Publish the pod's capture once the capture is recorded as started in status."""
        try:
            # Every pod gets a metadata.json, even when all its profiles failed: it says why.
            await job.recorded()
            job.fence()
            await asyncio.to_thread(staged.commit, metadata)
        except BaseException:
            await asyncio.to_thread(staged.discard)
            raise
        for result in results:
            self.metrics.profiles.labels(result.type, "succeeded" if result.ok else "failed").inc()
            if result.failure is not None:
                self.metrics.errors.labels(str(result.failure.reason)).inc()
            self.metrics.bytes_written.inc(result.bytes)
            if result.growth is not None:
                self.metrics.bytes_written.inc(int(result.growth.get("secondBytes", 0)))

    async def _profile(
        self,
        job: CaptureJob,
        pod: PodInfo,
        endpoint: Endpoint,
        staged: StagedCapture,
        request: ProfileRequest,
    ) -> ProfileOutcome:
        started = time.monotonic()
        try:
            fetched = await self._fetch_checked(job, endpoint, staged, request)
            first_taken = time.monotonic()
            baseline = None
            if job.baseline_id is not None:
                key = ArtifactKey(job.namespace, job.session, pod.name, job.baseline_id)
                baseline = await asyncio.to_thread(
                    self.store.published_file, key, request.file_name
                )
            async with self.analysis_slots:
                try:
                    readable = await self.analysis.run(
                        make_readable,
                        staged,
                        request,
                        f"{pod.name} {request.type} ({job.request.id})",
                        baseline,
                    )
                except AnalysisCrashedError as crash:  # the profile is kept, not summarised
                    readable = Readable(error=str(crash))
        except ProfileError as failure:
            reported = failure
            if failure.reason in _GONE_HINTS and await _pod_gone(job, pod):
                reported = ProfileError(
                    FailureReason.POD_GONE,
                    f"the pod was deleted during the capture ({failure.message})",
                )
            return ProfileOutcome(
                request.type, failure=reported, seconds_taken=time.monotonic() - started
            )
        growth: dict[str, Any] | None = None
        second_missing: ProfileError | None = None
        if request.pair is not None:
            growth, second_missing = await self._second_of_pair(
                job, pod, endpoint, staged, request, first_taken
            )
        return ProfileOutcome(
            request.type,
            file=request.file_name,
            bytes=fetched.bytes,
            sha256=fetched.sha256,
            seconds_taken=time.monotonic() - started,
            summary=readable.summary,
            empty_reason=readable.empty_reason,
            flamegraph=readable.flamegraph,
            analysis_error=readable.error,
            versus_baseline=readable.versus_baseline,
            growth=growth,
            second_missing=second_missing,
        )

    async def _second_of_pair(
        self,
        job: CaptureJob,
        pod: PodInfo,
        endpoint: Endpoint,
        staged: StagedCapture,
        request: ProfileRequest,
        first_taken: float,
    ) -> tuple[dict[str, Any], ProfileError | None]:
        """The second profile of a leak pair, `pair` seconds after the first, and the growth.

        Only this profile waits: the pod's other profiles (a CPU profile sampling meanwhile)
        run beside it, so the capture lasts about the longer of the two, and it holds the same
        session and operator slot as any profile being sampled. A second profile that cannot be
        taken fails nothing: the first is kept, and growth.missing says why.
        """
        assert request.pair is not None
        asked: dict[str, Any] = {"seconds": request.pair}
        runs_before = _restarts(job, pod, endpoint.container)
        await asyncio.sleep(max(0.0, request.pair - (time.monotonic() - first_taken)))
        name = request.second_file_name
        try:
            if not job.pod_exists(pod):
                raise ProfileError(
                    FailureReason.POD_GONE,
                    "the pod was deleted between the two profiles of the pair",
                )
            _raise_if_restarted(job, pod, endpoint.container, runs_before)
            fetched = await self._fetch_checked(job, endpoint, staged, request, name)
            try:
                _raise_if_restarted(job, pod, endpoint.container, runs_before)
            except ProfileError:
                # A new process's heap: not the pair's, and not to be read as one.
                await asyncio.to_thread((staged.staging / name).unlink, missing_ok=True)
                raise
        except ProfileError as failure:
            missing = failure
            if failure.reason in _GONE_HINTS and await _pod_gone(job, pod):
                missing = ProfileError(
                    FailureReason.POD_GONE,
                    f"the pod was deleted between the two profiles of the pair ({failure.message})",
                )
            elif failure.reason in _GONE_HINTS and (
                restarted := await _restarted(job, pod, endpoint.container, runs_before)
            ):
                missing = restarted
            elif failure.reason not in (FailureReason.POD_GONE, FailureReason.CONTAINER_RESTARTED):
                missing = ProfileError(
                    failure.reason,
                    f"the second profile, {request.pair:g}s after the first, could not be taken "
                    f"(was the container killed?): {failure.message}",
                )
            reason = {"reason": str(missing.reason), "message": missing.message}
            return {**asked, "missing": reason}, missing
        kept = {**asked, "secondFile": name, "secondBytes": fetched.bytes}
        kept["secondSha256"] = fetched.sha256
        title = f"{pod.name} {request.type} ({job.request.id})"
        async with self.analysis_slots:
            try:
                found = await self.analysis.run(growth_between, staged, request, title)
            except AnalysisCrashedError as crash:  # both profiles are kept
                found = {"error": str(crash)}
        return {**kept, **found}, None

    async def _fetch_checked(
        self,
        job: CaptureJob,
        endpoint: Endpoint,
        staged: StagedCapture,
        request: ProfileRequest,
        file_name: str | None = None,
    ) -> Fetched:
        """Fetch, check and keep one profile (under file_name, by default the request's);
        every way it can fail becomes a ProfileError."""
        file_name = file_name or request.file_name
        temp = staged.temp_path(file_name)
        # No profile request from a replica that lost the namespace: the new owner takes it (a
        # Go process serves one CPU profile at a time, so a stale one would fail the new one).
        job.fence()
        fetched = await self.fetcher.fetch(
            endpoint.base_url,
            request,
            temp,
            max_bytes=job.spec.limits.max_profile_bytes,
            fetch_timeout=job.spec.limits.fetch_timeout,
        )
        try:
            trace = request.type == "trace"
            await asyncio.to_thread(_check_and_keep, staged, temp, file_name, trace)
        except NotAProfileError as error:
            await asyncio.to_thread(staged.drop, file_name)
            raise ProfileError(
                FailureReason.NOT_A_PROFILE,
                f"{endpoint.base_url}/{request.endpoint} did not return a {request.type} "
                f"profile: {error}",
            ) from None
        except OSError as error:
            await asyncio.to_thread(staged.drop, file_name)
            raise ProfileError(
                FailureReason.WRITE_FAILED, f"writing the profile failed: {error}"
            ) from None
        return fetched


async def _with_joiners(
    joining: Joining,
    pods: Sequence[PodInfo],
    capture: Callable[[PodInfo], Awaitable[PodOutcome]],
) -> list[PodOutcome]:
    """Capture `pods` and those that join until all are done; outcomes in the order started."""
    started: list[asyncio.Future[PodOutcome]] = []
    running: set[asyncio.Future[PodOutcome]] = set()
    try:
        for pod in pods:
            started.append(asyncio.ensure_future(capture(pod)))
        running.update(started)
        while True:
            for pod in joining.take():
                joined = asyncio.ensure_future(capture(pod))
                started.append(joined)
                running.add(joined)
            if not running and not joining.open:
                break  # closed, and no await since take(): nothing added is left behind
            arrival: asyncio.Future[Any] = asyncio.ensure_future(joining.arrived.wait())
            waited: set[asyncio.Future[Any]] = {*running, arrival}
            try:
                await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrival.cancel()
            running = {task for task in running if not task.done()}
    finally:
        # Cancelled (operator stopping): the pods' own clean-up runs as they are cancelled.
        joining.open = False
        for task in running:
            task.cancel()
    return [task.result() for task in started]


def _check_and_keep(staged: StagedCapture, temp: Path, file_name: str, trace: bool) -> None:
    """Check that the fetched file is what was asked for, and keep it: one worker-thread trip."""
    check_file(temp, trace=trace)
    staged.keep(file_name)


def _restarts(job: CaptureJob, pod: PodInfo, container: str | None) -> int | None:
    """Restarts of the pod's profiled container (of all, when not known) as the watch has them."""
    now = job.pod_now(pod) if job.pod_now is not None else None
    if now is None:
        return None
    return sum(r.restart_count for r in now.runs if container is None or r.name == container)


def _raise_if_restarted(
    job: CaptureJob, pod: PodInfo, container: str | None, before: int | None
) -> None:
    """ProfileError ContainerRestarted when the container restarted since `before` was read."""
    after = _restarts(job, pod, container)
    if before is None or after is None or after <= before:
        return
    now = job.pod_now(pod) if job.pod_now is not None else None
    last = next(
        (r for r in (now.runs if now else ()) if container is None or r.name == container), None
    )
    how = ""
    if last is not None and last.last_reason:
        code = f", exit code {last.last_exit_code}" if last.last_exit_code is not None else ""
        how = f" ({last.last_reason}{code})"
    which = f"the container {container}" if container else "a container"
    raise ProfileError(
        FailureReason.CONTAINER_RESTARTED,
        f"{which} restarted between the two profiles of the pair{how}: a second profile would "
        "be of a new process",
    )


async def _restarted(
    job: CaptureJob, pod: PodInfo, container: str | None, before: int | None
) -> ProfileError | None:
    """Whether the container restarted; the pod watch may lag the dropped connection a little."""
    for _ in range(int(POD_GONE_GRACE / 0.1) + 1):
        try:
            _raise_if_restarted(job, pod, container, before)
        except ProfileError as restarted:
            return restarted
        await asyncio.sleep(0.1)
    return None


async def _pod_gone(job: CaptureJob, pod: PodInfo) -> bool:
    """Whether the pod was deleted; the pod watch may lag the dropped connection a little."""
    for _ in range(int(POD_GONE_GRACE / 0.1)):
        if not job.pod_exists(pod):
            return True
        await asyncio.sleep(0.1)
    return not job.pod_exists(pod)


def _outcome_from_metadata(pod: PodInfo, key: ArtifactKey, data: dict[str, Any]) -> PodOutcome:
    results = []
    for entry in data.get("profiles", []):
        kind = entry["parameters"]["type"]
        failed = entry.get("failed")
        if failed:
            failure = ProfileError(FailureReason(failed["reason"]), failed["message"])
            results.append(ProfileOutcome(kind, failure=failure))
        else:
            growth = entry.get("growth")
            missing = growth.get("missing") if isinstance(growth, dict) else None
            results.append(
                ProfileOutcome(
                    kind,
                    file=entry["file"],
                    bytes=entry["bytes"],
                    sha256=entry["sha256"],
                    growth=growth,
                    second_missing=(
                        ProfileError(FailureReason(missing["reason"]), missing["message"])
                        if missing
                        else None
                    ),
                )
            )
    return PodOutcome(pod.name, pod.node, key.relative_path, tuple(results), skipped=True)
