"""Container restarts of a session's pods: which are new, and which want a capture now.

The kubelet counts each container's restarts (status.containerStatuses[].restartCount) and keeps
the last exit in lastState.terminated (reason OOMKilled, Error, ...; exitCode; finishedAt), as
kubelet_pods.go's convertToAPIContainerStatuses writes them. A session remembers the count it
last saw per pod UID and container (status.restartsSeen), so that an operator restart neither
reports a restart twice nor misses one that happened meanwhile. A container the session has not
seen yet counts from zero only if it restarted (or its pod was created) after the session was:
restarts older than the session are not news.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spikeprof.core.planner import CaptureRequest, capture_id, format_time, parse_time
from spikeprof.core.pods import ContainerRun, PodInfo
from spikeprof.core.quantities import format_duration
from spikeprof.core.spec import OnRestart

RECENT_RESTARTS = 10  # records kept in status.restarts, newest first


@dataclass(frozen=True)
class RestartRecord:
    """One restart of one container, as status.restarts and the capture's metadata say it."""

    time: str  # when the operator saw it
    pod: str
    pod_uid: str
    container: str
    restart_count: int
    reason: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    previous_capture: str | None = None
    """The last capture of this pod before the restart, to compare the new one with."""
    capture_due: str | None = None
    """trigger.onRestart: when the restarted container is captured (after its warm-up)."""
    capture: str | None = None  # the capture taken of the restarted container
    outcome: str | None = None  # when no capture follows: why (a guard, the pod went, ...)

    @property
    def key(self) -> str:
        return f"{self.pod_uid}/{self.container}/{self.restart_count}"

    @property
    def waiting(self) -> bool:
        """A capture is wanted and has been neither taken nor given up."""
        return self.capture_due is not None and self.capture is None and self.outcome is None

    def describe(self) -> str:
        """The restart in words, for events and capture reasons."""
        how = self.reason or "no reason given"
        if self.exit_code is not None:
            how += f", exit code {self.exit_code}"
        return (
            f"container {self.container} of pod {self.pod} restarted ({how}); "
            f"restart count {self.restart_count}"
        )

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> RestartRecord:
        exit_code = raw.get("exitCode")
        return cls(
            time=str(raw.get("time", "")),
            pod=str(raw.get("pod", "")),
            pod_uid=str(raw.get("podUID", "")),
            container=str(raw.get("container", "")),
            restart_count=int(raw.get("restartCount") or 0),
            reason=raw.get("reason"),
            exit_code=int(exit_code) if exit_code is not None else None,
            finished_at=raw.get("finishedAt"),
            previous_capture=raw.get("previousCapture"),
            capture_due=raw.get("captureDue"),
            capture=raw.get("capture"),
            outcome=raw.get("outcome"),
        )

    def render(self) -> dict[str, Any]:
        out = {
            "time": self.time,
            "pod": self.pod,
            "podUID": self.pod_uid,
            "container": self.container,
            "restartCount": self.restart_count,
            "reason": self.reason,
            "exitCode": self.exit_code,
            "finishedAt": self.finished_at,
            "previousCapture": self.previous_capture,
            "captureDue": self.capture_due,
            "capture": self.capture,
            "outcome": self.outcome,
        }
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class RestartFindings:
    """What one look found about restarts; `core.status.next_status` records it."""

    seen: Mapping[str, int]
    """Restart counts per "<pod UID>/<container>" of the selected pods that ever restarted."""
    found: tuple[RestartRecord, ...] = ()  # new restarts, oldest first
    settled: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Records (by key) whose wanted capture will not come, and why."""


def scan(
    seen: Mapping[str, int],
    pods: Iterable[PodInfo],
    *,
    session_created: datetime.datetime,
    now: datetime.datetime,
    on_restart: OnRestart | None,
    recent_captures: Sequence[Mapping[str, Any]],
) -> RestartFindings:
    """The restarts new since the counts in `seen`, and the counts as they are now.

    Only containers with restarts are remembered: status stays small at many pods, and one that
    never restarted has nothing to compare. Pods no longer selected are forgotten.
    """
    counts: dict[str, int] = {}
    found: list[RestartRecord] = []
    for pod in pods:
        for run in pod.runs:
            if run.restart_count <= 0:
                continue
            where = f"{pod.uid}/{run.name}"
            counts[where] = run.restart_count
            known = seen.get(where)
            if known is None:
                known = 0 if _during_session(pod, run, session_created) else run.restart_count
            if run.restart_count > known:
                found.append(_record(pod, run, now, on_restart, recent_captures))
    return RestartFindings(counts, tuple(found))


def _during_session(pod: PodInfo, run: ContainerRun, session_created: datetime.datetime) -> bool:
    """Whether the container's last restart happened after the session was created."""
    for moment in (run.last_finished_at, pod.created):
        if moment:
            try:
                if parse_time(moment) > session_created:
                    return True
            except ValueError:
                continue
    return False


def _record(
    pod: PodInfo,
    run: ContainerRun,
    now: datetime.datetime,
    on_restart: OnRestart | None,
    recent_captures: Sequence[Mapping[str, Any]],
) -> RestartRecord:
    due = None
    if on_restart is not None and on_restart.wants(run.last_reason):
        started = now
        # The kubelet always writes RFC 3339; without a start time, count from now.
        with contextlib.suppress(ValueError):
            started = parse_time(run.started_at) if run.started_at else now
        due = format_time(started + datetime.timedelta(seconds=on_restart.after))
    return RestartRecord(
        time=format_time(now),
        pod=pod.name,
        pod_uid=pod.uid,
        container=run.name,
        restart_count=run.restart_count,
        reason=run.last_reason,
        exit_code=run.last_exit_code,
        finished_at=run.last_finished_at,
        previous_capture=last_capture_of(pod.name, recent_captures),
        capture_due=due,
    )


def last_capture_of(pod: str, recent_captures: Sequence[Mapping[str, Any]]) -> str | None:
    """The newest capture in status.recentCaptures that wrote artifacts of `pod`."""
    for entry in recent_captures:  # newest first
        if entry.get("result") == "Failed":
            continue
        if pod in (entry.get("capturedPods") or ()):
            return str(entry.get("id"))
        # Entries written before capturedPods listed artifact directories instead.
        for directory in entry.get("artifacts") or ():
            parts = str(directory).split("/")
            if len(parts) == 4 and parts[2] == pod:
                return str(entry.get("id"))
    return None


def event_message(record: RestartRecord, now: datetime.datetime) -> str:
    """The ContainerRestarted event: what restarted, and what follows."""
    described = record.describe()
    text = described[:1].upper() + described[1:]
    if record.capture_due is not None:
        wait = max(0.0, (parse_time(record.capture_due) - now).total_seconds())
        text += f"; trigger.onRestart captures it in {format_duration(round(wait))}"
    if record.previous_capture is not None:
        text += f"; its last capture before the restart is {record.previous_capture}"
    return text + "."


def due(
    records: Sequence[RestartRecord],
    reachable: Iterable[PodInfo],
    selected: Iterable[PodInfo],
    now: datetime.datetime,
    *,
    wanted: bool = True,
) -> tuple[list[RestartRecord], dict[str, str]]:
    """Waiting records whose warm-up is over and whose pod answers; and those given up on.

    A record of a pod that is gone (or replaced by another with the same name) is given up: the
    restarted container no longer exists; so are all once the spec no longer asks for restart
    captures (`wanted` False). One of a pod that is not ready yet waits.
    """
    waiting = [r for r in records if r.waiting and r.capture_due is not None]
    if not waiting:
        return [], {}  # the usual case: no pod sets built at every look over thousands of pods
    ready = {p.uid for p in reachable}
    present = {p.uid for p in selected}
    ripe: list[RestartRecord] = []
    given_up: dict[str, str] = {}
    for record in waiting:
        if not wanted:
            given_up[record.key] = "NotWanted: trigger.onRestart was removed from the spec"
        elif record.pod_uid not in present:
            given_up[record.key] = "PodGone: the pod was deleted before the capture was due"
        elif record.pod_uid in ready and parse_time(record.capture_due or "") <= now:
            ripe.append(record)
    return ripe, given_up


def recorded(
    current: Sequence[RestartRecord], findings: RestartFindings
) -> tuple[RestartRecord, ...]:
    """status.restarts after a look: the new records first, the settled ones with their outcome."""
    settled = [
        dataclasses.replace(r, outcome=findings.settled[r.key])
        if r.key in findings.settled and r.waiting
        else r
        for r in current
    ]
    return _bounded([*reversed(findings.found), *settled])


def captured(
    current: Sequence[RestartRecord], keys: Iterable[str], capture_id: str
) -> tuple[RestartRecord, ...]:
    """status.restarts once the capture of the restarted containers ran."""
    chosen = set(keys)
    return tuple(
        dataclasses.replace(r, capture=capture_id) if r.key in chosen and r.waiting else r
        for r in current
    )


def _bounded(records: Sequence[RestartRecord]) -> tuple[RestartRecord, ...]:
    """The newest RECENT_RESTARTS, but never dropping one that still waits for its capture
    while an older, finished one could go instead."""
    if len(records) <= RECENT_RESTARTS:
        return tuple(records)
    waiting = [r for r in records if r.waiting]
    kept = set(map(id, waiting[:RECENT_RESTARTS]))
    for record in records:
        if len(kept) >= RECENT_RESTARTS:
            break
        kept.add(id(record))
    return tuple(r for r in records if id(r) in kept)


def restart_capture(records: Sequence[RestartRecord], now: datetime.datetime) -> CaptureRequest:
    """One capture of every pod whose restarted container is due, each restart in the reason."""
    pods = tuple(sorted({r.pod for r in records}))
    reason = "; ".join(f"trigger.onRestart: {r.describe()}" for r in records)
    return CaptureRequest(
        id=capture_id(now, "restart"),
        trigger="restart",
        reason=reason,
        requested_at=now,
        pods=pods,
        restarts=tuple(r.render() for r in records),
    )


def restart_context(request: CaptureRequest, pod: str) -> dict[str, Any]:
    """What a pod's metadata.json says of the restart that called for its capture: the restart
    record (newest, if the container restarted more than once) and previousCapture."""
    mine = [RestartRecord.parse(r) for r in request.restarts if r.get("pod") == pod]
    if not mine:
        return {}
    latest = max(mine, key=lambda r: r.restart_count)
    out: dict[str, Any] = {
        "restart": {
            key: value
            for key, value in latest.render().items()
            if key in ("container", "restartCount", "reason", "exitCode", "finishedAt", "time")
        }
    }
    if latest.previous_capture is not None:
        out["previousCapture"] = latest.previous_capture
    return out
