"""SessionWorker: one look gathers the facts, decides the next status and writes what changed."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from spikeprof.adapters.kube import KubeError
from spikeprof.adapters.pod_http import Fetched
from spikeprof.core.pods import PodInfo
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.spec import ProfileRequest
from spikeprof.services import session as session_module
from spikeprof.services.alerts import SessionRegistry
from spikeprof.services.arming import ArmingReport
from spikeprof.services.capture import CaptureJob
from spikeprof.services.notify import Notifier
from spikeprof.services.session import SessionWorker
from spikeprof.services.triggers import SpikeWatcher
from tests.unit.services.conftest import (
    NOW,
    FakeArmer,
    FakeCapturer,
    FakeMetricSource,
    FakeOutputs,
    FakeProfiles,
    FakeStatusWriter,
    NotifierParts,
    pod,
    real_capturer,
    spec,
)

META = {"generation": 1, "creationTimestamp": "2026-11-26T00:59:00Z"}


class Session:
    """A worker over fakes, with the events it posted."""

    def __init__(
        self,
        writer: FakeStatusWriter,
        pods: Sequence[PodInfo] = (pod("web-1"),),
        *,
        armer: FakeArmer | None = None,
        source: FakeMetricSource | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.writer = writer
        self._last_spec: dict[str, Any] | None = None
        self._generation = 0
        self.capturer = FakeCapturer()
        self.events: list[tuple[str, str, str]] = []
        self.worker = SessionWorker(
            namespace="shop",
            name="checkout",
            writer=writer,
            capturer=self.capturer,
            version="test",
            pods_in_namespace=lambda: list(pods),
            pods_version=lambda: 1,
            post_event=lambda *event: self.events.append(event),
            spikes=SpikeWatcher(lambda trigger, target: source or FakeMetricSource()),
            registry=SessionRegistry(),
            outputs=FakeOutputs(),
            armer=armer or FakeArmer(),
            port_forward_missing=_no_verbs_missing,
            notifier=notifier or NotifierParts().notifier(),
        )

    async def look(self, spec: dict[str, Any], now: datetime.datetime = NOW) -> bool:
        # kopf hands the worker its copy of the status: here, what the "API server" holds.
        captured = await self.worker.step(spec, self._meta(spec), dict(self.writer.status), now)
        await self.worker.ended()  # the capture's end is written in the background
        return captured

    def _meta(self, spec: dict[str, Any]) -> dict[str, Any]:
        """As the API server does: a changed spec is a new generation."""
        if spec != self._last_spec:
            self._last_spec, self._generation = spec, self._generation + 1
        return {**META, "generation": self._generation}

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


async def _no_verbs_missing(namespace: str) -> list[str]:
    return []


async def test_an_immediate_session_captures_once_and_records_it_in_status(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer)
    assert await session.look(spec(trigger={"immediate": True})) is True
    assert [names for _, names in session.capturer.jobs] == [["web-1"]]
    status = writer.status
    assert status["captures"]["total"] == 1
    assert status["lastCapture"]["result"] == "Succeeded"
    assert (status["phase"], status["immediateDone"]) == ("Armed", True)
    assert "pendingCapture" not in status
    assert session.reasons() == ["CaptureStarted", "Captured"]
    # The capture was recorded as pending before it ran, so that a crash resumes it.
    assert any("pendingCapture" in patch and patch["pendingCapture"] for patch in writer.patches)

    assert await session.look(spec(trigger={"immediate": True})) is False
    assert len(session.capturer.jobs) == 1


async def test_a_look_that_finds_nothing_new_writes_nothing(writer: FakeStatusWriter) -> None:
    session = Session(writer)
    assert await session.look(spec()) is False
    assert writer.status["phase"] == "Armed"
    assert writer.status["targets"] == {"matched": 1, "reachable": 1, "summary": "1/1"}
    written = len(writer.patches)
    await session.look(spec(), NOW + datetime.timedelta(seconds=5))
    assert len(writer.patches) == written


async def test_an_invalid_spec_fails_the_session_with_one_event(writer: FakeStatusWriter) -> None:
    session = Session(writer)
    bad = spec(profiles=[{"type": "memory"}])
    await session.look(bad)
    await session.look(bad)
    assert writer.status["phase"] == "Failed"
    [ready] = writer.status["conditions"]
    assert (ready["type"], ready["reason"]) == ("Ready", "InvalidSpec")
    assert len(writer.patches) == 1
    assert session.reasons() == ["InvalidSpec"]


ALERTS = {"alerts": {"matchLabels": {"alertname": "HighCPU"}}}


async def test_a_pending_alert_captures_the_pods_it_names_and_is_then_handled(
    writer: FakeStatusWriter,
) -> None:
    writer.status = {"pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-2"]}}}
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    assert await session.look(spec(trigger=ALERTS)) is True
    assert [names for _, names in session.capturer.jobs] == [["web-2"]]
    assert not writer.status.get("pendingAlerts")
    assert writer.status["alertsHandled"] == ["k1"]
    assert writer.status["lastCapture"]["trigger"] == "alert"


async def test_an_alert_held_back_by_the_cooldown_is_answered_without_a_capture(
    writer: FakeStatusWriter,
) -> None:
    writer.status = {
        "pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}},
        "podLastCaptured": {"web-1": "2026-11-26T00:58:00Z"},
    }
    session = Session(writer)
    assert await session.look(spec(trigger=ALERTS, limits={"cooldown": "10m"})) is False
    assert session.capturer.jobs == []
    assert writer.status["alertsHandled"] == ["k1"]
    assert writer.status["suppressed"]["total"] == 1
    assert writer.status["suppressed"]["last"]["guard"] == "Cooldown"
    assert session.reasons() == ["CaptureSuppressed"]


async def test_a_pod_above_its_threshold_is_captured_and_the_metrics_are_reported(
    writer: FakeStatusWriter,
) -> None:
    source = FakeMetricSource([{"web-1": 2.0 * 2**30, "web-2": 1.0}])
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")], source=source)
    trigger = {"thresholds": [{"metric": "memory", "above": "1Gi"}], "metricsSource": "scrape"}
    assert await session.look(spec(trigger=trigger)) is True
    assert [names for _, names in session.capturer.jobs] == [["web-1"]]
    conditions = {c["type"]: c for c in writer.status["conditions"]}
    assert conditions["MetricsAvailable"]["message"] == (
        "scrape: metrics for 2 of 2 selected pod(s)."
    )
    assert writer.status["lastCapture"]["trigger"] == "threshold"


async def test_until_its_pods_serve_profiles_an_arming_session_captures_nothing(
    writer: FakeStatusWriter,
) -> None:
    waiting = ArmingReport(False, "Arming", "waiting for 1 pod(s)", ())
    session = Session(writer, armer=FakeArmer(report=waiting))
    target = {"kind": "dapr", "access": "direct", "enableProfiling": True}
    assert await session.look(spec(target=target, trigger={"immediate": True})) is False
    assert session.capturer.jobs == []
    assert writer.status["phase"] == "Arming"
    conditions = {c["type"]: c for c in writer.status["conditions"]}
    assert conditions["ProfilingEnabled"]["reason"] == "Arming"


async def test_while_the_api_server_is_away_a_capture_runs_and_its_status_waits(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer)
    writer.away = True
    assert await session.look(spec(trigger={"immediate": True})) is True
    assert len(session.capturer.jobs) == 1
    assert writer.status == {}
    writer.away = False
    # kopf still shows the old (empty) status: the worker reads it as it will be, and does
    # not capture again; the waiting writes go out in order.
    assert await session.look(spec(trigger={"immediate": True})) is False
    assert len(session.capturer.jobs) == 1
    assert writer.status["captures"]["total"] == 1
    assert writer.status["immediateDone"] is True


async def test_a_new_capture_is_recorded_with_what_the_look_found_in_one_write(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer)
    assert await session.look(spec(trigger={"immediate": True})) is True
    started, finished = writer.patches
    assert started["pendingCapture"]["trigger"] == "immediate"
    assert started["targets"] == {"matched": 1, "reachable": 1, "summary": "1/1"}
    assert finished["pendingCapture"] is None


async def test_the_loop_looks_again_when_the_next_threshold_evaluation_is_due(
    writer: FakeStatusWriter,
) -> None:
    source = FakeMetricSource([{"web-1": 1.0}])
    session = Session(writer, source=source)
    trigger = {
        "thresholds": [{"metric": "memory", "above": "1Gi"}],
        "metricsSource": "scrape",
        "interval": "2s",
    }
    assert await session.look(spec(trigger=trigger)) is False
    assert source.asked == [["web-1"]]
    assert 1.5 < session.worker.seconds_to_next_look(poll_seconds=5.0) <= 2.0
    assert session.worker.seconds_to_next_look(poll_seconds=0.5) == 0.5


async def test_without_thresholds_the_loop_looks_again_after_the_poll_interval(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer)
    await session.look(spec())
    assert session.worker.seconds_to_next_look(poll_seconds=5.0) == 5.0


class HeldProfiles(FakeProfiles):
    """Holds the first profile until released, as a pod sampling for a while does."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.first_asked = asyncio.Event()
        self.second_asked = asyncio.Event()

    async def fetch(
        self,
        base_url: str,
        request: ProfileRequest,
        destination: Path,
        *,
        max_bytes: int,
        fetch_timeout: float,
    ) -> Fetched:
        fetched = await super().fetch(
            base_url, request, destination, max_bytes=max_bytes, fetch_timeout=fetch_timeout
        )
        (self.first_asked if len(self.fetched) == 1 else self.second_asked).set()
        if len(self.fetched) == 1:
            await self.release.wait()
        return fetched


def _trigger_in_metadata(root: Path, field: str) -> dict[str, Any]:
    """Pod -> a field of `trigger` in its capture's metadata.json (alerts: the keys)."""
    return {
        path.parent.parent.name: json.loads(path.read_text())["trigger"][field]
        for path in root.glob("shop/checkout/*/*/metadata.json")
    }


async def _recorded(session: Session, entries: dict[str, Any]) -> None:
    """What the alert intake does, its write landed: the alerts in status, handed over."""
    await session.writer.patch("shop", "checkout", {"pendingAlerts": entries})
    session.worker._deliver(entries, _written())


def _written(error: Exception | None = None) -> asyncio.Future[None]:
    """The alert receiver's write of what it delivers, as landed (or failed)."""
    written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        written.set_result(None)
    else:
        written.set_exception(error)
    return written


async def test_an_alert_is_captured_while_its_write_is_under_way_and_recorded_after_it(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, [pod("web-1")])
    entry = {"k1": {"alert": "HighCPU", "pods": ["web-1"]}}
    written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    session.worker._deliver(entry, written)
    look = asyncio.create_task(session.look(spec(trigger=ALERTS)))
    for _ in range(50):
        await asyncio.sleep(0)
    # The profile was asked before the alert's write landed; the look waits for that write.
    assert [names for _, names in session.capturer.jobs] == [["web-1"]]
    assert not look.done()
    assert not any(p.get("pendingCapture") for p in writer.patches)
    # What the alert intake's write does when it lands.
    await writer.patch("shop", "checkout", {"pendingAlerts": entry})
    written.set_result(None)
    assert await look is True
    # The capture's start, then its end, came after the alert's record: nothing re-adds it.
    assert writer.patches[0] == {"pendingAlerts": entry}
    assert writer.patches[1]["pendingCapture"]["alertKeys"] == ["k1"]
    assert writer.status["alertsHandled"] == ["k1"]
    assert not writer.status.get("pendingAlerts")


async def test_an_alert_the_receiver_could_not_record_is_not_acted_on(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, [pod("web-1")])
    refused = _written(KubeError("the API server refused the write"))
    session.worker._deliver({"k1": {"alert": "HighCPU", "pods": ["web-1"]}}, refused)
    # Answered 5xx: Alertmanager sends it again, and that copy is recorded and captured.
    assert await session.look(spec(trigger=ALERTS)) is False
    assert session.capturer.jobs == []
    assert not writer.status.get("pendingAlerts")


async def test_an_alert_recorded_while_an_alert_capture_runs_joins_it(
    writer: FakeStatusWriter, tmp_path: Path
) -> None:
    writer.status = {"pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}}}
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    profiles = HeldProfiles()
    session.worker.capturer = real_capturer(tmp_path, profiles)
    look = asyncio.create_task(session.look(spec(trigger=ALERTS)))
    await profiles.first_asked.wait()
    second = {"k2": {"alert": "HighCPU", "pods": ["web-2"]}}
    await _recorded(session, second)
    await profiles.second_asked.wait()  # web-2 is asked while web-1 still samples
    profiles.release.set()
    assert await look is True
    assert [url for url, _ in profiles.fetched] == [
        "http://10.0.0.1:6060/debug/pprof",
        "http://10.0.0.2:6060/debug/pprof",
    ]
    assert writer.status["captures"]["total"] == 1
    assert writer.status["alertsHandled"] == ["k1", "k2"]
    assert not writer.status.get("pendingAlerts")
    assert writer.status["lastCapture"]["pods"] == 2
    # The grown request was recorded before its pod's artifacts were published.
    grown = [p["pendingCapture"] for p in writer.patches if p.get("pendingCapture")]
    assert grown[-1]["alertKeys"] == ["k1", "k2"]
    # Each pod's metadata names the alert that asked for it, the joined one too.
    assert _trigger_in_metadata(tmp_path, "alerts") == {"web-1": ["k1"], "web-2": ["k2"]}


async def test_an_alert_put_back_in_pending_after_it_was_answered_is_not_captured_again(
    writer: FakeStatusWriter, tmp_path: Path
) -> None:
    # The same alert sent twice at once: the second receiver write landed after the capture
    # answered the first, and a worker that starts now (a restart) finds it in both places.
    writer.status = {
        "pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}},
        "alertsHandled": ["k1"],
        "captures": {"total": 1},
    }
    session = Session(writer, [pod("web-1")])
    profiles = HeldProfiles()
    profiles.release.set()
    session.worker.capturer = real_capturer(tmp_path, profiles)
    assert await session.look(spec(trigger=ALERTS)) is False
    assert profiles.fetched == []
    assert writer.status["captures"]["total"] == 1


async def test_an_alert_after_the_join_window_waits_for_the_next_capture(
    writer: FakeStatusWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "JOIN_SECONDS", 0.0)
    writer.status = {"pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}}}
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    profiles = HeldProfiles()
    session.worker.capturer = real_capturer(tmp_path, profiles)
    look = asyncio.create_task(session.look(spec(trigger=ALERTS)))
    await profiles.first_asked.wait()
    assert session.worker.waiting_alerts() == 1  # taken by the capture, in status until it ends
    session.worker._deliver({"k2": {"alert": "HighCPU", "pods": ["web-2"]}}, _written())
    assert session.worker.waiting_alerts() == 2  # on its way to status
    profiles.release.set()
    assert await look is True
    assert writer.status["alertsHandled"] == ["k1"]
    assert writer.status["lastCapture"]["pods"] == 1
    assert session.worker.waiting_alerts() == 1  # k1 answered
    # Not lost: the next look captures it.
    assert await session.look(spec(trigger=ALERTS)) is True
    assert session.worker.waiting_alerts() == 0
    assert writer.status["alertsHandled"] == ["k1", "k2"]
    assert writer.status["captures"]["total"] == 2
    assert [url for url, _ in profiles.fetched][-1] == "http://10.0.0.2:6060/debug/pprof"


async def test_an_alert_recorded_while_a_capture_runs_stays_pending_in_status(
    writer: FakeStatusWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "JOIN_SECONDS", 0.0)  # it does not join this capture
    writer.status = {"pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}}}
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    profiles = HeldProfiles()
    session.worker.capturer = real_capturer(tmp_path, profiles)
    look = asyncio.create_task(session.look(spec(trigger=ALERTS)))
    await profiles.first_asked.wait()
    await writer.patch(
        "shop", "checkout", {"pendingAlerts": {"k2": {"alert": "HighCPU", "pods": ["web-2"]}}}
    )
    profiles.release.set()
    assert await look is True
    # The capture answered k1 only; k2, answered 200 by the intake, is still durably pending.
    assert writer.status["alertsHandled"] == ["k1"]
    assert list(writer.status["pendingAlerts"]) == ["k2"]


class LaggingApi(FakeStatusWriter):
    """Writes take a while; kopf's copy of the status (`seen`) follows every 30 ms; every
    stored pendingCapture must be whole."""

    def __init__(self, seconds: float = 0.02) -> None:
        super().__init__()
        self.seconds = seconds
        self.seen: dict[str, Any] = {}

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await asyncio.sleep(self.seconds)
        await super().patch(namespace, name, status)
        pending = self.status.get("pendingCapture")
        assert pending is None or "trigger" in pending, pending

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(0.03)
            self.seen.clear()
            self.seen.update(self.status)


class SlowCapturer(FakeCapturer):
    async def run(self, job: CaptureJob, pods: Sequence[PodInfo]) -> CaptureOutcome:
        await asyncio.sleep(0.05)
        await job.recorded()
        return await super().run(job, pods)


class Flag:
    def __init__(self) -> None:
        self.up = False

    def __bool__(self) -> bool:
        return self.up


async def test_alerts_in_a_row_are_each_captured_while_the_last_capture_s_end_is_written() -> None:
    api = LaggingApi()
    session = Session(api, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    worker = session.worker
    worker.capturer = capturer = SlowCapturer()
    watching = asyncio.create_task(api.watch())
    stop = Flag()
    body = spec(trigger=ALERTS, limits={"cooldown": "0s"})
    serving = asyncio.create_task(
        worker.serve(stop, body, META, api.seen, 1.0, logging.getLogger("test"))
    )
    wanted = {f"k{i}": "web-1" if i % 3 else "web-2" for i in range(12)}
    for key, name in wanted.items():  # as the alert intake hands them over
        entry = {key: {"alert": "HighCPU", "pods": [name]}}
        written = asyncio.ensure_future(api.patch("shop", "checkout", {"pendingAlerts": entry}))
        worker._deliver(entry, written)
        await written
        await asyncio.sleep(0.03)
    for _ in range(100):
        if set(api.status.get("alertsHandled") or ()) == set(wanted) and not api.status.get(
            "pendingCapture"
        ):
            break
        await asyncio.sleep(0.05)
    stop.up = True
    worker.wakeup.set()
    await serving
    watching.cancel()
    assert sorted(api.status["alertsHandled"]) == sorted(wanted)
    assert not api.status.get("pendingAlerts")
    # Each alert was recorded in a capture of its pod (started for it, or joined).
    recorded: dict[str, list[str]] = {}
    for patch in api.patches:
        started = patch.get("pendingCapture") or {}
        for key in started.get("alertKeys", ()):
            recorded.setdefault(key, started["pods"])
    assert {key: name in recorded[key] for key, name in wanted.items()} == dict.fromkeys(
        wanted, True
    )
    assert api.status["captures"]["total"] == len(capturer.jobs)


async def test_a_capture_whose_status_writes_are_slow_ends_once_its_pods_are_published(
    tmp_path: Path,
) -> None:
    api = LaggingApi(seconds=0.5)  # the start is still being written when the pods are done
    session = Session(api, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    session.worker.capturer = real_capturer(tmp_path, FakeProfiles())
    async with asyncio.timeout(10):  # the end waits for the commits, which wait for the start
        assert await session.look(spec(trigger={"immediate": True})) is True
    started, finished = (p for p in api.patches if "pendingCapture" in p)
    assert (
        started["pendingCapture"]["trigger"] == "immediate" and finished["pendingCapture"] is None
    )
    assert api.status["captures"]["total"] == 1
    assert sorted(_trigger_in_metadata(tmp_path, "type")) == ["web-1", "web-2"]


async def test_an_alert_for_a_pod_already_in_the_capture_closes_its_window(
    writer: FakeStatusWriter, tmp_path: Path
) -> None:
    writer.status = {"pendingAlerts": {"k1": {"alert": "HighCPU", "pods": ["web-1"]}}}
    session = Session(writer, [pod("web-1"), pod("web-2", ip="10.0.0.2")])
    profiles = HeldProfiles()
    session.worker.capturer = real_capturer(tmp_path, profiles)
    look = asyncio.create_task(session.look(spec(trigger=ALERTS)))
    await profiles.first_asked.wait()
    again = {"k2": {"alert": "HighCPU", "pods": ["web-1"]}}  # web-1 is being captured
    await _recorded(session, again)
    for _ in range(20):
        await asyncio.sleep(0)
    other = {"k3": {"alert": "HighCPU", "pods": ["web-2"]}}
    await _recorded(session, other)
    for _ in range(20):
        await asyncio.sleep(0)
    profiles.release.set()
    assert await look is True
    # Closed by k2: k3 did not join either; both go to the next capture, taken at once.
    assert writer.status["alertsHandled"] == ["k1"]
    assert await session.look(spec(trigger=ALERTS)) is True
    assert sorted(writer.status["alertsHandled"]) == ["k1", "k2", "k3"]
    assert writer.status["captures"]["total"] == 2
