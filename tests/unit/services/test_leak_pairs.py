"""Leak pairs: a second heap profile `pair` seconds after the first, and what grew in between."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from spikeprof.adapters.pod_http import Fetched
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.planner import CaptureRequest
from spikeprof.core.pods import ContainerRun, PodInfo
from spikeprof.core.results import FailureReason, ProfileError
from spikeprof.core.spec import ProfileRequest, parse_spec
from spikeprof.services.capture import CaptureJob, Capturer
from tests.unit.pprof_proto import ProfileBuilder, call_chain
from tests.unit.services.conftest import NOW, pod, real_capturer, spec

REQUEST = CaptureRequest("20261126T010000.000Z-threshold", "threshold", "memory", NOW)
MiB = 2**20


def heap(leaked: int, *, time_nanos: int) -> bytes:
    """A heap profile: main.steady holds 8 MiB, main.leak holds `leaked` bytes."""
    builder = ProfileBuilder().sample_type("inuse_space", "bytes")
    call_chain(builder, ["main.main", "main.steady", "main.leak"])
    builder.sample([2, 1], [8 * MiB]).sample([3, 1], [leaked])
    return builder.scalar_field(9, time_nanos).gzipped()


@dataclass
class PairedEndpoint:
    """A pod's pprof endpoint whose heap grows between requests; a failure replaces an answer."""

    bodies: list[bytes]
    failures: dict[int, Exception] = field(default_factory=dict)  # request number -> error
    times: list[tuple[str, float]] = field(default_factory=list)  # (type, monotonic time)

    async def serves(self, base_url: str) -> bool:
        return True

    async def fetch(
        self,
        base_url: str,
        request: ProfileRequest,
        destination: Path,
        *,
        max_bytes: int,
        fetch_timeout: float,
    ) -> Fetched:
        number = sum(1 for kind, _ in self.times if kind == request.type)
        self.times.append((request.type, time.monotonic()))
        if number in self.failures:
            raise self.failures[number]
        body = self.bodies[min(number, len(self.bodies) - 1)]
        await asyncio.to_thread(destination.write_bytes, body)
        return Fetched(bytes=len(body), sha256=f"{number}" * 64, seconds=0.01)


def _run(
    root: Path,
    endpoint: PairedEndpoint,
    *,
    exists: bool = True,
    profiles: list[dict[str, object]] | None = None,
    runs: list[tuple[ContainerRun, ...]] | None = None,
) -> tuple[Capturer, CaptureJob]:
    """`runs`: the pod's container runs as the watch reports them, one entry per look."""
    capturer = real_capturer(root, endpoint)
    parsed = parse_spec(spec(profiles=profiles or [{"type": "heap", "pair": "1s"}]))

    def pod_exists(pod: PodInfo) -> bool:
        return exists

    def pod_now(pod: PodInfo) -> PodInfo | None:
        if runs is None:
            return pod
        return dataclasses.replace(pod, runs=runs.pop(0) if len(runs) > 1 else runs[0])

    job = CaptureJob("shop", "checkout", parsed, REQUEST, "test", pod_exists, pod_now=pod_now)
    return capturer, job


def _metadata(root: Path) -> dict[str, object]:
    key = ArtifactKey("shop", "checkout", "web-1", REQUEST.id)
    return dict(json.loads((root / key.relative_path / METADATA_FILE).read_text()))


def _second_profiles(root: Path) -> list[Path]:
    return list(root.rglob("heap.second.pb.gz"))


async def test_a_leak_pair_records_the_sites_that_grew_and_draws_their_growth(
    tmp_path: Path,
) -> None:
    endpoint = PairedEndpoint(
        [heap(1 * MiB, time_nanos=10**18), heap(21 * MiB, time_nanos=10**18 + 2 * 10**9)]
    )
    capturer, job = _run(tmp_path, endpoint)
    outcome = await capturer.run(job, [pod("web-1")])
    assert outcome.result == "Succeeded"
    first, second = (moment for _, moment in endpoint.times)
    assert second - first >= 1.0
    [entry] = _metadata(tmp_path)["profiles"]  # type: ignore[misc]
    assert entry["parameters"] == {"type": "heap", "pair": 1.0}
    growth = entry["growth"]
    assert growth["secondFile"] == "heap.second.pb.gz"
    assert (growth["before"], growth["after"], growth["growth"]) == (9 * MiB, 29 * MiB, 20 * MiB)
    assert (growth["measuredSeconds"], growth["growthPerSecond"]) == (2.0, 10 * MiB)
    assert growth["top"] == [
        {
            "function": "main.leak",
            "before": 1 * MiB,
            "after": 21 * MiB,
            "growth": 20 * MiB,
            "cumGrowth": 20 * MiB,
        }
    ]
    directory = tmp_path / ArtifactKey("shop", "checkout", "web-1", REQUEST.id).relative_path
    assert (directory / "heap.second.pb.gz").read_bytes() == endpoint.bodies[1]
    assert "main.leak" in (directory / growth["flamegraph"]).read_text()
    assert "incompletePairs" not in outcome.to_status()


async def test_a_pod_deleted_between_the_two_keeps_the_first_and_says_why(tmp_path: Path) -> None:
    endpoint = PairedEndpoint([heap(1 * MiB, time_nanos=10**18)])
    capturer, job = _run(tmp_path, endpoint, exists=False)
    outcome = await capturer.run(job, [pod("web-1")])
    assert outcome.result == "Succeeded"  # the first profile is the capture's, and it is kept
    assert [kind for kind, _ in endpoint.times] == ["heap"]  # no dial to a deleted pod
    [entry] = _metadata(tmp_path)["profiles"]  # type: ignore[misc]
    assert entry["file"] == "heap.pb.gz"
    assert entry["growth"] == {
        "seconds": 1.0,
        "missing": {
            "reason": "PodGone",
            "message": "the pod was deleted between the two profiles of the pair",
        },
    }
    [incomplete] = outcome.to_status()["incompletePairs"]
    assert (incomplete["pod"], incomplete["type"], incomplete["reason"]) == (
        "web-1",
        "heap",
        "PodGone",
    )
    assert "1 leak pair(s) without a second profile (web-1/heap): PodGone" in outcome.summary()


async def test_a_container_that_stops_answering_keeps_the_first_with_the_fetch_error(
    tmp_path: Path,
) -> None:
    refused = ProfileError(FailureReason.CONNECTION_REFUSED, "connection refused")
    endpoint = PairedEndpoint([heap(1 * MiB, time_nanos=10**18)], failures={1: refused})
    capturer, job = _run(tmp_path, endpoint)
    outcome = await capturer.run(job, [pod("web-1")])
    assert (outcome.profiles_ok, outcome.profiles_failed) == (1, 0)
    [entry] = _metadata(tmp_path)["profiles"]  # type: ignore[misc]
    missing = entry["growth"]["missing"]
    assert missing["reason"] == "ConnectionRefused"
    assert "1s after the first, could not be taken" in missing["message"]
    assert _second_profiles(tmp_path) == []


async def test_the_pair_waits_beside_a_cpu_profile_not_after_it(tmp_path: Path) -> None:
    endpoint = PairedEndpoint([heap(1 * MiB, time_nanos=0), heap(2 * MiB, time_nanos=0)])
    capturer, job = _run(
        tmp_path,
        endpoint,
        profiles=[{"type": "cpu", "duration": "1s"}, {"type": "heap", "pair": "1s"}],
    )
    started = time.monotonic()
    await capturer.run(job, [pod("web-1")])
    # The fake's cpu answers at once; the heap pair's wait alone sets the capture's length.
    assert time.monotonic() - started < 1.9
    heap_entry = _metadata(tmp_path)["profiles"][1]  # type: ignore[index]
    assert "measuredSeconds" not in heap_entry["growth"]  # the profiles carry no time stamps
    assert heap_entry["growth"]["growth"] == 1 * MiB


async def test_a_capture_resumed_after_a_restart_still_reports_the_missing_second(
    tmp_path: Path,
) -> None:
    endpoint = PairedEndpoint([heap(1 * MiB, time_nanos=10**18)])
    capturer, job = _run(tmp_path, endpoint, exists=False)
    await capturer.run(job, [pod("web-1")])
    again = await capturer.run(job, [pod("web-1")])
    assert again.pods[0].skipped
    assert again.to_status()["incompletePairs"][0]["reason"] == "PodGone"


FIRST_RUN = (ContainerRun("app", 0),)
KILLED = (ContainerRun("app", 1, last_reason="OOMKilled", last_exit_code=137),)


async def test_a_container_killed_and_restarted_between_the_two_has_no_second_profile(
    tmp_path: Path,
) -> None:
    # The new process answers (with a small heap); its profile is not the pair's second.
    endpoint = PairedEndpoint([heap(40 * MiB, time_nanos=10**18), heap(0, time_nanos=10**18)])
    capturer, job = _run(tmp_path, endpoint, runs=[FIRST_RUN, FIRST_RUN, KILLED])
    outcome = await capturer.run(job, [pod("web-1")])
    assert outcome.result == "Succeeded"
    [entry] = _metadata(tmp_path)["profiles"]  # type: ignore[misc]
    assert entry["growth"]["missing"] == {
        "reason": "ContainerRestarted",
        "message": "the container app restarted between the two profiles of the pair "
        "(OOMKilled, exit code 137): a second profile would be of a new process",
    }
    assert _second_profiles(tmp_path) == []
    assert outcome.to_status()["incompletePairs"][0]["reason"] == "ContainerRestarted"


async def test_a_container_still_down_after_its_kill_is_named_as_restarted(
    tmp_path: Path,
) -> None:
    refused = ProfileError(FailureReason.CONNECTION_REFUSED, "connection refused")
    endpoint = PairedEndpoint([heap(40 * MiB, time_nanos=10**18)], failures={1: refused})
    # The watch reports the restart a little after the refused connection.
    runs = [FIRST_RUN] * 4 + [KILLED]
    capturer, job = _run(tmp_path, endpoint, runs=runs)
    outcome = await capturer.run(job, [pod("web-1")])
    [incomplete] = outcome.to_status()["incompletePairs"]
    assert incomplete["reason"] == "ContainerRestarted"
    assert "(OOMKilled, exit code 137)" in incomplete["message"]
