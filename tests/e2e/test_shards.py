"""Three operator processes as the shards of one group, over 30 namespaces with a session each.

Every session takes a goroutine profile of its one pod: once at start (immediate), once on
demand after a shard is SIGKILLed (its sessions are served by the others within 20 s), and once
for an alert posted to one shard for all 30 namespaces after the killed shard came back and the
namespaces rebalanced. At the end every session holds exactly three captures, in status and on
disk, none twice and none missed; and each shard watched pods only in the namespaces it served
(spikeprof_pod_watches).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess, loopback_settings
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    create_pod,
    create_session,
    read_metadata,
    session_body,
)

from spikeprof.core.shard_handover import CLAIMS_ANNOTATION, GROUP_LABEL, parse_claims
from spikeprof.core.shards import owner

pytestmark = pytest.mark.e2e

SHARDS = ("shard-0", "shard-1", "shard-2")
COUNT = 30
GROUP = "shards"
LEASE_SECONDS = 15  # SPIKEPROF_LEASE_SECONDS's default, which the shards run with
TAKEOVER_SECONDS = 20.0  # issue #15: a dead shard's sessions are served by the others by then
CAPTURE_AFTER_CLAIM_SECONDS = 10.0


def _spec() -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {"app": "target"}},
        "target": {"kind": "pprof", "port": 7777, "access": "direct"},
        "profiles": [{"type": "goroutine"}],
        "trigger": {"immediate": True, "alerts": {"matchLabels": {"alertname": "ShardTest"}}},
        "limits": {"cooldown": "0s"},
        "output": {"volume": {}},
    }


@pytest.fixture
def team_namespaces(api: client.ApiClient, wait_for: Callable[..., Any]) -> Iterator[list[str]]:
    """30 namespaces, each with one running pprof-target pod and a session over it."""
    core = client.CoreV1Api(api)
    prefix = f"s{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-team-{i}" for i in range(COUNT)]
    for name in names:
        core.create_namespace({"metadata": {"name": name}})

    def accounts_exist() -> bool:
        found = core.list_service_account_for_all_namespaces(field_selector="metadata.name=default")
        have = {sa.metadata.namespace for sa in found.items}
        return set(names) <= have

    wait_for(accounts_exist, 60, "ServiceAccount default in every namespace")
    for name in names:
        create_pod(api, name, "target", {"app": "target"})

    def pods_running() -> bool:
        found = core.list_pod_for_all_namespaces(label_selector="app=target").items
        running = {p.metadata.namespace for p in found if p.status.phase == "Running"}
        return set(names) <= running

    wait_for(pods_running, 90, "a running pod in every namespace")
    for name in names:
        create_session(api, name, session_body("profile", _spec()))
    yield names
    for name in names:
        with contextlib.suppress(client.ApiException):  # clean-up: a test's failure says more
            core.delete_namespace(name)


class Shard:
    """One operator process of the group; started again under the same identity after a kill."""

    def __init__(self, cluster: ControlPlane, identity: str, lease_namespace: str, tmp: Path):
        self.cluster = cluster
        self.identity = identity
        self.lease_namespace = lease_namespace
        self.tmp = tmp
        self.runs = 0
        self.process: OperatorProcess | None = None

    @property
    def artifact_root(self) -> Path:
        return self.tmp / self.identity / "artifacts"

    def start(self, namespaces: list[str]) -> OperatorProcess:
        self.runs += 1
        self.process = OperatorProcess(
            self.cluster.kubeconfig,
            self.artifact_root,
            self.tmp / self.identity / f"operator-{self.runs}.log",
            namespaces,
            settings=loopback_settings(),
            env={
                "SPIKEPROF_IDENTITY": self.identity,
                "SPIKEPROF_SHARD_LEASE_PREFIX": GROUP,
                "SPIKEPROF_LEASE_NAMESPACE": self.lease_namespace,
            },
        )
        self.process.start()
        return self.process

    def pod_watches(self) -> set[str]:
        """Namespaces whose pods this process watches now (spikeprof_pod_watches == 1)."""
        assert self.process is not None
        url = f"http://127.0.0.1:{self.process.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        found = re.findall(r'^spikeprof_pod_watches\{namespace="([^"]+)"\} 1\.0$', text, re.M)
        return set(found)

    def post_alerts(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self.process is not None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.process.alerts_port}/alerts",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def _sessions(api: client.ApiClient, namespaces: list[str]) -> dict[str, dict[str, Any]]:
    """namespace -> its session's status, from one list."""
    found = client.CustomObjectsApi(api).list_cluster_custom_object(
        "spikeprof.io", "v1alpha1", "profilingsessions"
    )
    wanted = set(namespaces)
    return {
        item["metadata"]["namespace"]: item.get("status") or {}
        for item in found["items"]
        if item["metadata"]["namespace"] in wanted
    }


def _claims(api: client.ApiClient, lease_namespace: str) -> dict[str, frozenset[str]]:
    """identity -> the namespaces its Lease claims (released or absent Leases claim nothing)."""
    leases = client.CoordinationV1Api(api).list_namespaced_lease(
        lease_namespace, label_selector=f"{GROUP_LABEL}={GROUP}"
    )
    return {
        lease.spec.holder_identity: parse_claims(
            (lease.metadata.annotations or {}).get(CLAIMS_ANNOTATION)
        )
        for lease in leases.items
        if lease.spec.holder_identity
    }


def _total(status: dict[str, Any]) -> int:
    return int((status.get("captures") or {}).get("total", 0)) if status else 0


def test_three_shards_take_over_a_killed_one_rebalance_on_its_return_and_capture_each_once(
    cluster: ControlPlane,
    api: client.ApiClient,
    namespace: str,
    team_namespaces: list[str],
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    names = team_namespaces
    shards = {identity: Shard(cluster, identity, namespace, tmp_path) for identity in SHARDS}
    share = {s: {ns for ns in names if owner(ns, SHARDS) == s} for s in SHARDS}
    try:
        for shard in shards.values():
            shard.start(names)

        def all_captured(total: int) -> dict[str, dict[str, Any]] | None:
            statuses = _sessions(api, names)
            done = len(statuses) == COUNT and all(
                _total(s) >= total and not s.get("pendingCapture") for s in statuses.values()
            )
            return statuses if done else None

        # 1. Each shard claims its share (after its join period) and captures it once.
        wait_for(lambda: all_captured(1), 90, "the immediate capture of every session")
        wait_for(
            lambda: _claims(api, namespace) == {s: frozenset(share[s]) for s in SHARDS},
            20,
            "each shard claiming exactly its rendezvous share",
        )
        for identity, shard in shards.items():
            assert shard.pod_watches() == share[identity], identity

        # 2. shard-1 is SIGKILLed; every session is asked for a capture at once. The others
        # take its namespaces when its Lease has gone a lease duration unchanged on their clock.
        killed = shards["shard-1"]
        assert killed.process is not None
        killed.process.kill()
        killed_at = time.monotonic()
        coordination = client.CoordinationV1Api(api)
        last_renewal = coordination.read_namespaced_lease(
            f"{GROUP}-shard-1", namespace
        ).spec.renew_time
        for ns in names:
            annotate_session(api, ns, "profile", "spikeprof.io/capture-now", "after-kill")
        orphans = share["shard-1"]
        claimed_at: float | None = None
        captured_at: dict[str, float] = {}
        while len(captured_at) < COUNT and time.monotonic() - killed_at < 60:
            live = _claims(api, namespace)
            others = set().union(*(live.get(s, frozenset()) for s in ("shard-0", "shard-2")))
            if claimed_at is None and orphans <= others:
                claimed_at = time.monotonic() - killed_at
                # Never before its Lease went a whole duration without renewal (the clocks
                # of this machine's processes agree, so wall times compare here).
                unrenewed = datetime.datetime.now(datetime.UTC) - last_renewal
                assert unrenewed.total_seconds() >= LEASE_SECONDS, unrenewed
            for ns, status in _sessions(api, names).items():
                if ns not in captured_at and _total(status) >= 2:
                    captured_at[ns] = time.monotonic() - killed_at
            time.sleep(0.25)
        assert set(captured_at) == set(names), "sessions not captured after the kill"
        assert claimed_at is not None and claimed_at <= TAKEOVER_SECONDS, claimed_at
        slowest = max(captured_at[ns] for ns in orphans)
        # Served (claimed, then its session's daemon starts) within 20 s. The capture asked
        # for comes at that session's first look: its pod watch's first list, the profile, the
        # status write; about a second on a quiet machine, up to 5 s on one loaded 15 deep.
        assert slowest - claimed_at <= CAPTURE_AFTER_CLAIM_SECONDS, (claimed_at, slowest)
        print(f"takeover: claimed {claimed_at:.1f} s, captured {slowest:.1f} s after the kill")
        survivors = ("shard-0", "shard-2")
        for identity in survivors:
            mine = {ns for ns in names if owner(ns, survivors) == identity}
            wait_for(lambda s=identity, m=mine: shards[s].pod_watches() == m, 10, identity)

        # 3. shard-1 comes back under the same identity: the others let its namespaces go, it
        # takes them after its join period, and the pod watches follow.
        killed.start(names)
        restarted_at = time.monotonic()
        wait_for(
            lambda: _claims(api, namespace) == {s: frozenset(share[s]) for s in SHARDS},
            45,
            "the namespaces rebalanced to shard-1",
        )
        print(f"rebalanced {time.monotonic() - restarted_at:.1f} s after the restart")
        for identity, shard in shards.items():
            wait_for(lambda s=shard, i=identity: s.pod_watches() == share[i], 10, identity)

        # 4. One notification to shard-0 names a pod in every namespace, two thirds of which
        # other shards serve: it answers 200 once all 30 are recorded, and each is captured.
        alerts = [
            {
                "status": "firing",
                "labels": {"alertname": "ShardTest", "namespace": ns, "pod": "target"},
                "annotations": {},
                "startsAt": "2026-12-02T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"fp-{ns}",
            }
            for ns in names
        ]
        body = {"version": "4", "status": "firing", "groupKey": "g", "alerts": alerts}
        status, reply = shards["shard-0"].post_alerts(body)
        assert status == 200, reply
        final = wait_for(lambda: all_captured(3), 60, "the alert capture of every session")
    finally:
        for shard in shards.values():
            if shard.process is not None:
                shard.process.stop()

    # None twice, none missed: three captures per session in status and on disk.
    assert {ns: _total(s) for ns, s in final.items()} == dict.fromkeys(names, 3)
    assert all((s.get("captures") or {}).get("failed", 0) == 0 for s in final.values())
    dirs = [d for shard in shards.values() for d in capture_dirs(shard.artifact_root)]
    per_namespace = Counter(d.parts[-4] for d in dirs)
    assert per_namespace == dict.fromkeys(names, 3), per_namespace
    triggers = Counter((d.parts[-4], read_metadata(d)["trigger"]["type"]) for d in dirs)
    for ns in names:
        assert (triggers[(ns, "immediate")], triggers[(ns, "capture-now")]) == (1, 1), ns
        assert triggers[(ns, "alert")] == 1, ns
    # Each capture was written by the shard that served its namespace then.
    for d in dirs:
        served_by = next(s for s in SHARDS if shards[s].artifact_root in d.parents)
        kind = read_metadata(d)["trigger"]["type"]
        ns = d.parts[-4]
        if kind == "capture-now":
            assert served_by == owner(ns, ("shard-0", "shard-2")), (ns, served_by)
        else:
            assert served_by == owner(ns, SHARDS), (ns, kind, served_by)
