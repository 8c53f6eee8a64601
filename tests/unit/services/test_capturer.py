"""Capturer: every requested profile from every pod, checked and kept on a real volume."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from spikeprof.adapters.kube import SessionGoneError
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.planner import CaptureRequest
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import FailureReason, ProfileError
from spikeprof.core.spec import parse_spec
from spikeprof.services.analysis import InProcesses
from spikeprof.services.capture import CaptureJob
from tests.unit.services.conftest import NOW, FakeProfiles, pod, real_capturer, spec

REQUEST = CaptureRequest("20261126T010000.000Z-immediate", "immediate", "spec.trigger", NOW)


def _job(*, exists: bool = True, profiles: list[dict[str, str]] | None = None) -> CaptureJob:
    parsed = parse_spec(spec(profiles=profiles or [{"type": "heap"}]))

    def pod_exists(pod: PodInfo) -> bool:
        return exists

    return CaptureJob("shop", "checkout", parsed, REQUEST, "test", pod_exists)


def _profiles_kept(root: Path) -> list[Path]:
    return sorted(root.rglob("*.pb.gz"))


async def test_a_heap_profile_is_kept_with_its_metadata_on_the_volume(tmp_path: Path) -> None:
    profiles = FakeProfiles()
    outcome = await real_capturer(tmp_path, profiles).run(_job(), [pod("web-1")])
    assert outcome.result == "Succeeded"
    assert profiles.fetched == [("http://10.0.0.1:6060/debug/pprof", "heap")]
    key = ArtifactKey("shop", "checkout", "web-1", REQUEST.id)
    directory = tmp_path / key.relative_path
    assert (directory / "heap.pb.gz").read_bytes() == profiles.body
    metadata = json.loads((directory / METADATA_FILE).read_text())
    assert [p["parameters"]["type"] for p in metadata["profiles"]] == ["heap"]


async def test_a_body_that_is_not_a_profile_fails_with_that_reason(tmp_path: Path) -> None:
    profiles = FakeProfiles(body=b"<html>login</html>")
    outcome = await real_capturer(tmp_path, profiles).run(_job(), [pod("web-1")])
    assert outcome.result == "Failed"
    [failure] = outcome.to_status()["failures"]
    assert (failure["pod"], failure["reason"]) == ("web-1", "NotAProfile")
    assert _profiles_kept(tmp_path) == []


async def test_one_failed_profile_leaves_the_others_and_says_why(tmp_path: Path) -> None:
    in_use = ProfileError(FailureReason.PROFILING_IN_USE, "cpu profiling already in use")
    profiles = FakeProfiles(failures={"cpu": in_use})
    job = _job(profiles=[{"type": "heap"}, {"type": "cpu", "duration": "1s"}])
    outcome = await real_capturer(tmp_path, profiles).run(job, [pod("web-1")])
    assert outcome.result == "PartiallyFailed"
    assert (outcome.profiles_ok, outcome.profiles_failed) == (1, 1)
    [failure] = outcome.to_status()["failures"]
    assert (failure["type"], failure["reason"]) == ("cpu", "ProfilingInUse")


async def test_a_pod_deleted_during_the_capture_is_named_as_gone(tmp_path: Path) -> None:
    refused = ProfileError(FailureReason.CONNECTION_REFUSED, "connection refused")
    profiles = FakeProfiles(failures={"heap": refused})
    outcome = await real_capturer(tmp_path, profiles).run(_job(exists=False), [pod("web-1")])
    [failure] = outcome.to_status()["failures"]
    assert failure["reason"] == "PodGone"
    assert failure["message"].startswith("the pod was deleted during the capture")


async def test_a_capture_finished_before_a_restart_is_not_taken_again(tmp_path: Path) -> None:
    profiles = FakeProfiles()
    await real_capturer(tmp_path, profiles).run(_job(), [pod("web-1")])
    again = await real_capturer(tmp_path, profiles).run(_job(), [pod("web-1")])
    assert again.result == "Succeeded"
    assert len(profiles.fetched) == 1


async def test_a_capture_without_pods_fails_saying_so(tmp_path: Path) -> None:
    outcome = await real_capturer(tmp_path, FakeProfiles()).run(_job(), [])
    assert outcome.summary().endswith("failed: no selected pod is running and ready.")


def _published(root: Path) -> int:
    return len(list(root.rglob(METADATA_FILE)))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_profiles_are_fetched_while_the_start_is_recorded_and_published_after_it(
    tmp_path: Path,
) -> None:
    profiles = FakeProfiles()
    asked, start_written = asyncio.Event(), asyncio.Event()

    async def recorded() -> None:
        asked.set()
        await start_written.wait()

    job = dataclasses.replace(_job(), recorded=recorded)
    running = asyncio.create_task(real_capturer(tmp_path, profiles).run(job, [pod("web-1")]))
    await asked.wait()
    assert profiles.fetched == [("http://10.0.0.1:6060/debug/pprof", "heap")]
    assert _published(tmp_path) == 0
    start_written.set()
    assert (await running).result == "Succeeded"
    assert _published(tmp_path) == 1


async def test_a_start_that_cannot_be_recorded_publishes_nothing(tmp_path: Path) -> None:
    async def refused() -> None:
        raise SessionGoneError("shop/checkout is gone")

    job = dataclasses.replace(_job(), recorded=refused)
    with pytest.raises(SessionGoneError):
        await real_capturer(tmp_path, FakeProfiles()).run(job, [pod("web-1")])
    assert _files(tmp_path) == []


async def test_profiles_analysed_in_worker_processes_have_their_summary_and_flame_graph(
    tmp_path: Path,
) -> None:
    workers = InProcesses(1)
    try:
        capturer = dataclasses.replace(real_capturer(tmp_path, FakeProfiles()), analysis=workers)
        outcome = await capturer.run(_job(), [pod("web-1")])
    finally:
        workers.close()
    assert outcome.result == "Succeeded"
    directory = tmp_path / ArtifactKey("shop", "checkout", "web-1", REQUEST.id).relative_path
    metadata = json.loads((directory / METADATA_FILE).read_text())
    [heap] = metadata["profiles"]
    assert heap["summary"]["sampleTypes"][0]["functions"], heap
    assert (directory / heap["flamegraph"]).read_text().startswith("<!DOCTYPE html>")
