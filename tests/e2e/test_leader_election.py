"""Active/standby with two real operator processes on one Lease, against the real API server.

Both replicas mount one artifact directory, as a cluster's replicas would share a ReadWriteMany
volume (or write to one object store): a capture the leader began is resumed by the standby
under its id, and a pod's artifacts published by either are seen by the other.

The capture-under-way test measures failover with controller-runtime's timings (15 s lease,
10 s renew deadline, 2 s retry), which the chart uses. The alert burst and the paused leader
test logic, not the figure, and shorten the lease (6/4/1 s) to keep the module short.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.leases import lease_holder
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    create_pod,
    create_session,
    get_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)
from localcluster.waiting import wait_for

pytestmark = pytest.mark.e2e

LEASE = "spikeprof-leader"
QUICK = {
    "SPIKEPROF_LEASE_SECONDS": "6",
    "SPIKEPROF_RENEW_DEADLINE_SECONDS": "4",
    "SPIKEPROF_LEASE_RETRY_SECONDS": "1",
}
"""For the tests of logic: a lease short enough that a failover costs seconds, not 15 s."""

LEASE_SECONDS, RETRY_SECONDS = 15.0, 2.0  # the defaults, which the first test runs with
TAKEOVER_BOUND = LEASE_SECONDS + 2 * RETRY_SECONDS + 1.0
"""A SIGKILLed leader cannot release its Lease. Its last renewal came at most one retry before
the kill; the standby saw it at its next try (at most one retry later), waits a whole lease from
then on its own clock, and takes over at the next try: at most lease + 2 retries after the kill
(at least lease - 1 retry). One second more for a loaded machine's requests."""


@dataclass
class Pair:
    leader: OperatorProcess
    standby: OperatorProcess
    artifacts: Path

    @staticmethod
    def name(replica: OperatorProcess) -> str:
        return replica.env["SPIKEPROF_IDENTITY"]


@pytest.fixture
def start_pair(
    cluster: ControlPlane, api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], Pair]]:
    """Starts replica-a and replica-b; the one that takes the Lease leads, the other stands by."""
    started: list[OperatorProcess] = []
    artifacts = tmp_path / "artifacts"

    def replica(identity: str, timings: dict[str, str]) -> OperatorProcess:
        operator = OperatorProcess(
            cluster.kubeconfig, artifacts, tmp_path / f"{identity}.log", [namespace]
        )
        operator.env.update(
            SPIKEPROF_IDENTITY=identity,
            SPIKEPROF_LEADER_ELECTION_LEASE=LEASE,
            SPIKEPROF_LEASE_NAMESPACE=namespace,
            **timings,
        )
        started.append(operator)
        operator.start()
        return operator

    def start(timings: dict[str, str]) -> Pair:
        # Both at once, as a Deployment starts them: whichever takes the Lease leads.
        both = {identity: replica(identity, timings) for identity in ("replica-a", "replica-b")}
        holder = wait_for(
            lambda: lease_holder(api, namespace, LEASE), 60, "one replica to take the Lease"
        )
        leader = both.pop(holder)
        (standby,) = both.values()
        wait_for(lambda: leader.readyz() == 200, 60, f"{holder} to lead")
        wait_for(lambda: standby.readyz() == 503, 60, "the other to stand by")
        return Pair(leader, standby, artifacts)

    yield start
    for operator in started:
        operator.stop()


def _hidden(root: Path) -> list[Path]:
    """Staging directories or temporary files: what a half-done capture would leave."""
    return [p for p in root.rglob("*") if p.name.startswith(".")]


def _events(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return list(
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )


def _pod_and_session(
    api: client.ApiClient, namespace: str, name: str, profiles: list[Any], trigger: dict[str, Any]
) -> None:
    create_pod(api, namespace, f"{name}-pod", {"app": name})
    wait_running(api, namespace, f"app={name}", 1, wait_for)
    spec = {
        "selector": {"matchLabels": {"app": name}},
        "target": {"kind": "pprof", "port": 7777, "access": "direct"},
        "profiles": profiles,
        "trigger": trigger,
        "limits": {"cooldown": "0s"},
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body(name, spec))


def _pending_capture(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (get_session(api, namespace, name).get("status") or {}).get("pendingCapture"),
        30,
        f"a capture of {name} under way",
        every=0.05,
    )
    return found


def test_a_capture_under_way_when_the_leader_is_killed_ends_once_under_its_id(
    api: client.ApiClient, namespace: str, start_pair: Callable[[dict[str, str]], Pair]
) -> None:
    pair = start_pair({})  # controller-runtime's timings: this is the failover figure
    _pod_and_session(
        api, namespace, "cpu10", [{"type": "cpu", "duration": "10s"}], {"immediate": True}
    )
    pending = _pending_capture(api, namespace, "cpu10")

    old, new = pair.name(pair.leader), pair.name(pair.standby)
    killed = time.monotonic()
    pair.leader.kill()
    wait_for(
        lambda: lease_holder(api, namespace, LEASE) == new,
        TAKEOVER_BOUND + 10,
        "the standby to take the Lease",
        every=0.05,
    )
    took_lease = time.monotonic() - killed
    wait_for(lambda: pair.standby.readyz() == 200, 10, "the standby ready", every=0.05)
    ready = time.monotonic() - killed
    print(f"\nfailover after SIGKILL: Lease taken {took_lease:.1f} s, ready {ready:.1f} s")
    assert took_lease <= TAKEOVER_BOUND
    assert ready <= TAKEOVER_BOUND + 1.0

    status = wait_captures(api, namespace, "cpu10", 1, wait_for, timeout=60)
    assert status["captures"]["total"] == 1
    assert [c["id"] for c in status["recentCaptures"]] == [pending["id"]]
    assert status["lastCapture"]["result"] == "Succeeded"
    (published,) = capture_dirs(pair.artifacts)
    metadata = read_metadata(published)
    assert (published.name, metadata["captureId"]) == (pending["id"], pending["id"])
    (cpu,) = metadata["profiles"]
    assert cpu["file"] == "cpu.pb.gz" and cpu["bytes"] > 0
    assert _hidden(pair.artifacts) == []
    reasons = Counter((e.reason, e.reporting_instance) for e in _events(api, namespace, "cpu10"))
    # The killed leader's CaptureStarted may have died with it (events are sent after the write).
    assert reasons[("CaptureStarted", new)] == 0 and reasons[("CaptureStarted", old)] <= 1
    assert reasons[("CaptureResumed", new)] == 1
    assert sum(n for (reason, _), n in reasons.items() if reason == "Captured") == 1


def _notification(namespace: str, pod: str, number: int) -> dict[str, Any]:
    labels = {
        "alertname": f"Burst{number:02d}",
        "burst": "yes",
        "namespace": namespace,
        "pod": pod,
    }
    return {
        "version": "4",
        "status": "firing",
        "groupKey": f'{{}}:{{alertname="Burst{number:02d}"}}',
        "receiver": "spikeprof",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": "2026-12-02T02:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"burst-{number:02d}",
            }
        ],
    }


def _post(operator: OperatorProcess, body: dict[str, Any]) -> int | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{operator.alerts_port}/alerts",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None  # refused or reset: the replica is dead


def test_every_alert_answered_200_in_a_burst_across_a_leader_kill_is_captured_once(
    api: client.ApiClient, namespace: str, start_pair: Callable[[dict[str, str]], Pair]
) -> None:
    pair = start_pair(QUICK)
    trigger = {"alerts": {"matchLabels": {"burst": "yes"}}}
    _pod_and_session(api, namespace, "burst", [{"type": "goroutine"}], trigger)
    wait_for(lambda: pair.leader.readyz() == 200, 30, "the leader serving the session")

    # As Alertmanager behind a Service over both replicas: each notification is sent until a
    # replica answers 200 (a dead one refuses, a standby answers 503).
    answered: dict[int, str] = {}
    for number in range(16):
        if number == 6:
            pair.leader.kill()
        body = _notification(namespace, "burst-pod", number)
        deadline = time.monotonic() + 60
        while number not in answered:
            assert time.monotonic() < deadline, f"no replica took Burst{number:02d}"
            for replica in (pair.leader, pair.standby):
                if _post(replica, body) == 200:
                    answered[number] = pair.name(replica)
                    break
            else:
                time.sleep(0.2)
    assert set(answered.values()) == {pair.name(pair.leader), pair.name(pair.standby)}

    names = {f"Burst{n:02d}" for n in answered}

    def all_captured() -> dict[str, Any] | None:
        status = get_session(api, namespace, "burst").get("status") or {}
        handled = set(status.get("alertsHandled") or ())
        done = {f"burst-{n:02d}@2026-12-02T02:00:00Z" for n in answered} <= handled
        quiet = not status.get("pendingAlerts") and not status.get("pendingCapture")
        return status if done and quiet else None

    wait_for(all_captured, 60, "every answered alert handled")
    captured: Counter[str] = Counter()
    for directory in capture_dirs(pair.artifacts):
        reason = read_metadata(directory)["trigger"]["reason"]
        found = re.fullmatch(r"alert (.+) fired \(\d+ notification\(s\)\)", reason)
        assert found, reason
        captured.update(found.group(1).split(", "))
    assert {name: captured[name] for name in names} == dict.fromkeys(names, 1)
    assert max(captured.values()) == 1
    assert _hidden(pair.artifacts) == []


def _managed_status_time(session: dict[str, Any], manager: str) -> datetime.datetime | None:
    for entry in session["metadata"].get("managedFields") or ():
        if entry.get("manager") == manager and entry.get("subresource") == "status":
            return datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    return None


def test_a_leader_paused_past_its_lease_does_not_act_when_it_wakes_and_may_lead_again(
    api: client.ApiClient, namespace: str, start_pair: Callable[[dict[str, str]], Pair]
) -> None:
    pair = start_pair(QUICK)
    _pod_and_session(
        api, namespace, "paused", [{"type": "cpu", "duration": "3s"}], {"immediate": True}
    )
    old, new = pair.name(pair.leader), pair.name(pair.standby)
    first = _pending_capture(api, namespace, "paused")
    pair.leader.pause()  # mid-capture
    paused_at = datetime.datetime.now(datetime.UTC)
    try:
        wait_for(lambda: lease_holder(api, namespace, LEASE) == new, 30, "the standby to lead")
        wait_captures(api, namespace, "paused", 1, wait_for, timeout=60)
    finally:
        pair.leader.resume()
    # While the old leader is awake again, the new one goes on serving: a capture asked for now.
    annotate_session(api, namespace, "paused", "spikeprof.io/capture-now", "after-wake")
    status = wait_captures(api, namespace, "paused", 2, wait_for, timeout=60)
    wait_for(lambda: "no longer leads" in pair.leader.log(), 10, "the old leader to notice")

    assert pair.leader.process is not None and pair.leader.process.poll() is None  # stands by
    assert pair.leader.readyz() == 503
    assert lease_holder(api, namespace, LEASE) == new
    session = get_session(api, namespace, "paused")
    last_by_old = _managed_status_time(session, f"spikeprof@{old}")
    assert last_by_old is not None and last_by_old <= paused_at  # wrote before, never after
    assert _managed_status_time(session, f"spikeprof@{new}") is not None
    late = [
        (e.reason, e.message)
        for e in _events(api, namespace, "paused")
        if e.reporting_instance == old
        and (e.last_timestamp or e.event_time or e.first_timestamp) > paused_at
    ]
    assert late == []
    ids = sorted(c["id"] for c in status["recentCaptures"])
    assert first["id"] in ids and len(ids) == 2 and status["captures"]["total"] == 2
    assert sorted(d.name for d in capture_dirs(pair.artifacts)) == ids
    assert _hidden(pair.artifacts) == []

    # The woken replica may lead again: the new leader stops cleanly (a rolling update) and
    # releases the Lease, so the other leads at its next try instead of after a whole lease.
    stopping = time.monotonic()
    pair.standby.stop()  # SIGTERM; returns once it exited
    exited = time.monotonic()
    wait_for(
        lambda: lease_holder(api, namespace, LEASE) == old,
        10,
        "the old leader to lead",
        every=0.05,
    )
    taken = time.monotonic() - exited
    print(
        f"\nclean stop: exited {exited - stopping:.1f} s after SIGTERM, Lease taken {taken:.1f} s later"
    )
    assert taken <= float(QUICK["SPIKEPROF_LEASE_RETRY_SECONDS"]) + 0.5
    wait_for(lambda: pair.leader.readyz() == 200, 10, "the old leader ready again")
