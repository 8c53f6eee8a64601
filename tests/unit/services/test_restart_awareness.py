"""SessionWorker and restarts: each restart of a selected container is recorded and told once;
trigger.onRestart captures the restarted container after its warm-up, guards applied."""

from __future__ import annotations

import datetime
from typing import Any

from spikeprof.core.pods import ContainerRun, PodInfo
from spikeprof.services.alerts import SessionRegistry
from spikeprof.services.session import SessionWorker
from spikeprof.services.triggers import SpikeWatcher
from tests.unit.services.conftest import (
    NOW,
    FakeArmer,
    FakeCapturer,
    FakeMetricSource,
    FakeOutputs,
    FakeStatusWriter,
    NotifierParts,
    pod,
    spec,
)

META = {"generation": 1, "creationTimestamp": "2026-11-26T00:59:00Z"}
ON_OOM = {"onRestart": {"reasons": ["OOMKilled"], "after": "30s"}}
TRIGGER = {"immediate": True, **ON_OOM}


def restarted(count: int, *, reason: str = "OOMKilled", at: datetime.datetime = NOW) -> PodInfo:
    """web-1 as the kubelet reports it after its app container's `count`-th restart at `at`."""
    run = ContainerRun(
        name="app",
        restart_count=count,
        last_reason=reason if count else None,
        last_exit_code=(137 if reason == "OOMKilled" else 1) if count else None,
        last_finished_at=f"{at - datetime.timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}",
        started_at=f"{at:%Y-%m-%dT%H:%M:%SZ}",
    )
    return pod("web-1", runs=(run,), created="2026-11-26T00:30:00Z")


class Session:
    """A worker over fakes whose pods the test changes between looks, as the pod watch would."""

    def __init__(self, writer: FakeStatusWriter, web: PodInfo) -> None:
        self.writer = writer
        self.pods = [web]
        self.version = 1
        self.capturer = FakeCapturer()
        self.events: list[tuple[str, str, str]] = []
        self.worker = self._worker()

    def _worker(self) -> SessionWorker:
        return SessionWorker(
            namespace="shop",
            name="checkout",
            writer=self.writer,
            capturer=self.capturer,
            version="test",
            pods_in_namespace=lambda: list(self.pods),
            pods_version=lambda: self.version,
            post_event=lambda *event: self.events.append(event),
            spikes=SpikeWatcher(lambda trigger, target: FakeMetricSource()),
            registry=SessionRegistry(),
            outputs=FakeOutputs(),
            armer=FakeArmer(),
            port_forward_missing=_no_verbs_missing,
            notifier=NotifierParts().notifier(),
        )

    def operator_restarts(self) -> None:
        self.worker = self._worker()

    def set_pod(self, web: PodInfo) -> None:
        self.pods = [web]
        self.version += 1

    async def look(
        self, trigger: dict[str, Any], now: datetime.datetime = NOW, cooldown: str = "10m"
    ) -> bool:
        body = spec(trigger=trigger, limits={"cooldown": cooldown})
        captured = await self.worker.step(body, META, dict(self.writer.status), now)
        await self.worker.ended()  # the capture's end is written in the background
        return captured

    def said(self, reason: str) -> list[str]:
        return [message for _, why, message in self.events if why == reason]


async def _no_verbs_missing(namespace: str) -> list[str]:
    return []


def seconds(n: float) -> datetime.datetime:
    return NOW + datetime.timedelta(seconds=n)


async def test_a_restart_is_recorded_and_told_once_even_without_a_capture(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, restarted(0))
    await session.look({})
    assert "restarts" not in writer.status
    session.set_pod(restarted(1, at=seconds(9)))
    assert await session.look({}, seconds(10)) is False
    (record,) = writer.status["restarts"]
    assert record == {
        "time": "2026-11-26T01:00:10Z",
        "pod": "web-1",
        "podUID": "uid-web-1",
        "container": "app",
        "restartCount": 1,
        "reason": "OOMKilled",
        "exitCode": 137,
        "finishedAt": "2026-11-26T01:00:08Z",
    }
    assert writer.status["restartsSeen"] == {"uid-web-1/app": 1}
    assert session.said("ContainerRestarted") == [
        "Container app of pod web-1 restarted (OOMKilled, exit code 137); restart count 1."
    ]
    assert session.capturer.jobs == []
    # Later looks, and a restarted operator reading the same status, tell it no more.
    await session.look({}, seconds(20))
    session.operator_restarts()
    await session.look({}, seconds(30))
    assert len(session.said("ContainerRestarted")) == 1
    assert len(writer.status["restarts"]) == 1


async def test_restarts_from_before_the_session_do_not_fire_at_its_first_look(
    writer: FakeStatusWriter,
) -> None:
    session = Session(
        writer, restarted(4, at=datetime.datetime(2026, 11, 26, 0, 40, tzinfo=datetime.UTC))
    )
    await session.look(ON_OOM)
    assert session.said("ContainerRestarted") == []
    assert writer.status["restartsSeen"] == {"uid-web-1/app": 4}
    assert "restarts" not in writer.status


async def test_onrestart_captures_the_restarted_container_after_its_warm_up(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, restarted(0))
    # The earlier capture of web-1 is 60s old at the restart: past a 20s cooldown.
    await session.look(TRIGGER, NOW, "20s")  # an earlier capture of web-1
    ((first, _),) = session.capturer.jobs
    session.set_pod(restarted(1, at=seconds(60)))
    await session.look(TRIGGER, seconds(61), "20s")
    (record,) = writer.status["restarts"]
    assert record["previousCapture"] == first.request.id
    assert record["captureDue"] == "2026-11-26T01:01:30Z"
    assert "captures it in 29s" in session.said("ContainerRestarted")[0]
    # Still warming up: no capture.
    assert await session.look(TRIGGER, seconds(80), "20s") is False
    assert await session.look(TRIGGER, seconds(91), "20s") is True
    job, pods = session.capturer.jobs[-1]
    assert pods == ["web-1"]
    assert job.request.trigger == "restart"
    assert job.request.restarts[0]["previousCapture"] == first.request.id
    (record,) = writer.status["restarts"]
    assert record["capture"] == job.request.id
    assert writer.status["lastCapture"]["trigger"] == "restart"
    # Captured once.
    assert await session.look(TRIGGER, seconds(200), "20s") is False
    assert len(session.capturer.jobs) == 2


async def test_a_restart_for_a_reason_onrestart_does_not_name_is_not_captured(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, restarted(0))
    await session.look(ON_OOM)
    session.set_pod(restarted(1, reason="Error", at=seconds(5)))
    await session.look(ON_OOM, seconds(6))
    await session.look(ON_OOM, seconds(60))
    assert session.capturer.jobs == []
    assert writer.status["restarts"][0]["reason"] == "Error"
    assert "captureDue" not in writer.status["restarts"][0]


async def test_the_cooldown_holds_a_restart_capture_back_and_the_record_says_so(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, restarted(0))
    trigger = {"immediate": True, **ON_OOM}
    await session.look(trigger)
    session.set_pod(restarted(1, at=seconds(10)))
    await session.look(trigger, seconds(11))
    await session.look(trigger, seconds(41))  # due, but web-1 was captured 41s ago (cooldown 10m)
    assert len(session.capturer.jobs) == 1
    (record,) = writer.status["restarts"]
    assert record["outcome"].startswith("Cooldown: pod web-1 was captured 41s ago")
    assert writer.status["suppressed"]["last"]["rule"] == "onRestart"
    assert session.said("CaptureSuppressed")


async def test_a_pod_deleted_before_its_restart_capture_is_given_up(
    writer: FakeStatusWriter,
) -> None:
    session = Session(writer, restarted(0))
    await session.look(ON_OOM)
    session.set_pod(restarted(1, at=seconds(10)))
    await session.look(ON_OOM, seconds(11))
    session.pods = []
    session.version += 1
    await session.look(ON_OOM, seconds(60))
    assert session.capturer.jobs == []
    assert writer.status["restarts"][0]["outcome"].startswith("PodGone")
