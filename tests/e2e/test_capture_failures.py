"""Each way a pprof endpoint fails, provoked for real: the failure is explained per profile,
the other profiles are kept, and an operator killed mid-capture neither duplicates nor leaks."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    capture_dirs,
    control,
    create_pod,
    create_session,
    get_session,
    read_metadata,
    session_body,
    session_events,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def _hold_cpu_profile(ip: str, seconds: int) -> http.client.HTTPConnection:
    """Another client takes a CPU profile, as someone with kubectl port-forward might, until it
    hangs up: Go's pprof handler stops sampling when its client goes (net/http/pprof's sleep
    waits on the request's context), so the test closes the connection instead of waiting out
    the whole profile."""
    connection = http.client.HTTPConnection(ip, 7777, timeout=seconds + 10)
    connection.request("GET", f"/debug/pprof/profile?seconds={seconds}")
    return connection


def test_each_failure_is_explained_and_other_profiles_are_kept(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    labels = {"app": "faulty"}
    create_pod(api, namespace, "healthy", labels)
    create_pod(api, namespace, "refuses", labels, port=None)  # nothing listens on 7777
    for name in ("hangs", "junk", "huge", "busy", "vanishes"):
        create_pod(api, namespace, name, labels)
    ips = wait_running(api, namespace, "app=faulty", 7, wait_for)
    control(ips["hangs"], "fault?mode=hang")
    control(ips["junk"], "fault?mode=junk")
    control(ips["huge"], "fault?mode=huge")
    control(ips["vanishes"], "fault?mode=hang")
    busy = _hold_cpu_profile(ips["busy"], 30)
    time.sleep(0.5)

    create_session(
        api,
        namespace,
        session_body(
            "faults",
            {
                "selector": {"matchLabels": labels},
                "target": {"port": 7777},
                "profiles": [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}],
                "trigger": {"immediate": True},
                "limits": {"maxConcurrent": 8, "maxProfileBytes": "1Mi", "fetchTimeout": "4s"},
                "output": {"volume": {}},
            },
        ),
    )
    # Delete one pod while the operator waits on it.
    wait_for(
        lambda: get_session(api, namespace, "faults").get("status", {}).get("pendingCapture"),
        30,
        "the capture to start",
    )
    time.sleep(1)
    client.CoreV1Api(api).delete_namespaced_pod("vanishes", namespace)

    status = wait_captures(api, namespace, "faults", 1, wait_for)
    last = status["lastCapture"]
    assert last["result"] == "PartiallyFailed"
    failures = {(f["pod"], f["type"]): f for f in last["failures"]}

    def failure(pod: str, kind: str) -> tuple[str, str]:
        entry = failures[(pod, kind)]
        return entry["reason"], entry["message"]

    assert not any(pod == "healthy" for pod, _ in failures)

    reason, message = failure("refuses", "cpu")
    assert reason == "ConnectionRefused"
    assert "refused the connection" in message

    reason, message = failure("hangs", "goroutine")
    assert reason == "Timeout"
    assert "gave no complete answer within 4s" in message

    reason, message = failure("junk", "goroutine")
    assert reason == "NotAProfile"
    assert (
        "expected a gzip-compressed pprof profile, got text starting 'this is not a pprof"
        in message
    )

    reason, message = failure("huge", "cpu")
    assert reason == "TooLarge"
    assert "exceeded maxProfileBytes (1Mi)" in message

    reason, message = failure("busy", "cpu")
    assert reason == "ProfilingInUse"
    assert "already taking a CPU profile" in message
    assert ("busy", "goroutine") not in failures, "the busy pod's other profile is kept"

    reason, message = failure("vanishes", "cpu")
    assert reason == "PodGone"
    assert "deleted during the capture" in message

    # Kept: everything that did not fail, with its metadata.
    by_pod = {d.parent.name: d for d in capture_dirs(operator.artifact_root)}
    assert sorted((by_pod["healthy"]).glob("*.pb.gz")) == [
        by_pod["healthy"] / "cpu.pb.gz",
        by_pod["healthy"] / "goroutine.pb.gz",
    ]
    assert (by_pod["busy"] / "goroutine.pb.gz").exists()
    assert not (by_pod["busy"] / "cpu.pb.gz").exists()
    assert not (by_pod["huge"] / "cpu.pb.gz").exists()
    junk_meta = read_metadata(by_pod["junk"])
    assert {p["parameters"]["type"]: p["failed"]["reason"] for p in junk_meta["profiles"]} == {
        "cpu": "NotAProfile",
        "goroutine": "NotAProfile",
    }
    for directory in by_pod.values():
        assert not [p for p in directory.iterdir() if p.name.startswith(".")]

    def partially_failed() -> list[str]:
        events = session_events(api, namespace, "faults")
        return [m for t, r, m in events if t == "Warning" and r == "CapturePartiallyFailed"]

    # The operator queues its events and sends them a moment after the status write.
    warning = wait_for(partially_failed, 30, "the CapturePartiallyFailed event")
    assert "11 failed: 2 ConnectionRefused (refuses/cpu, refuses/goroutine)" in warning[0]
    assert "1 ProfilingInUse (busy/cpu)" in warning[0]
    busy.close()  # the other client hangs up: the pod stops its profile


def test_operator_killed_mid_capture_resumes_without_duplicate_or_partial_file(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    labels = {"app": "slow"}
    for name in ("slow-a", "slow-b"):
        create_pod(api, namespace, name, labels)
    wait_running(api, namespace, "app=slow", 2, wait_for)
    create_session(
        api,
        namespace,
        session_body(
            "killed",
            {
                "selector": {"matchLabels": labels},
                "target": {"port": 7777},
                "profiles": [{"type": "heap"}, {"type": "cpu", "duration": "4s"}],
                "trigger": {"immediate": True},
                "output": {"volume": {}},
            },
        ),
    )
    pending = wait_for(
        lambda: get_session(api, namespace, "killed").get("status", {}).get("pendingCapture"),
        30,
        "the capture to be recorded as pending",
    )
    time.sleep(1.5)  # heap is written into staging, cpu is still sampling
    operator.kill()
    published = capture_dirs(operator.artifact_root)
    assert published == [], "nothing is visible before the capture completes"
    staged = [p for p in operator.artifact_root.rglob("*") if p.name.endswith(".partial")]
    assert staged, "the interrupted capture left only hidden staging directories"

    operator.start()
    status = wait_captures(api, namespace, "killed", 1, wait_for)
    assert status["captures"]["total"] == 1
    assert status["lastCapture"]["id"] == pending["id"]
    assert status["lastCapture"]["result"] == "Succeeded"
    dirs = capture_dirs(operator.artifact_root)
    assert sorted(d.parent.name for d in dirs) == ["slow-a", "slow-b"]
    assert all(d.name == pending["id"] for d in dirs)
    leftovers = [p for p in operator.artifact_root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    time.sleep(3)  # a duplicate would start within a poll interval
    assert get_session(api, namespace, "killed")["status"]["captures"]["total"] == 1
    assert len(capture_dirs(operator.artifact_root)) == 2
    reasons = [r for _t, r, _m in session_events(api, namespace, "killed")]
    assert "CaptureResumed" in reasons
