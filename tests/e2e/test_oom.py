"""Before the OOM kill: pods leaking at a known rate under a memory limit, on the local cluster.

The stand-in kubelet kills a container past its memory limit as the kernel's OOM killer would
(OOMKilled, exit code 137, restartCount + 1); pprof-target leaks at a known rate on
/control/leak, through main.leakMemory.
"""

from __future__ import annotations

import datetime
import subprocess
import time
import urllib.request
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

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

EXAMPLE = REPO_ROOT / "examples" / "oom-before-kill.yaml"


def _metrics_flowing(api: client.ApiClient, namespace: str, session: str) -> bool:
    conditions = get_session(api, namespace, session).get("status", {}).get("conditions", [])
    return any(c["type"] == "MetricsAvailable" and c["status"] == "True" for c in conditions)


def _oom_kill(api: client.ApiClient, namespace: str, pod: str) -> dict[str, Any] | None:
    """The container's last termination once it was OOM-killed, else None."""
    found = client.CoreV1Api(api).read_namespaced_pod(pod, namespace)
    for status in found.status.container_statuses or ():
        ended = status.last_state.terminated if status.last_state else None
        if ended is not None and ended.reason == "OOMKilled":
            return {
                "finishedAt": ended.finished_at,
                "exitCode": ended.exit_code,
                "restartCount": status.restart_count,
            }
    return None


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_example_captures_a_leak_pair_before_the_oom_kill_and_the_new_container_after(
    namespace: str,
    api: client.ApiClient,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_pod(api, namespace, "leaky", {"app": "leaky"}, memory_limit="256Mi")
    ip = wait_running(api, namespace, "app=leaky", 1, wait_for)["leaky"]
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    wait_for(lambda: _metrics_flowing(api, namespace, "leaky-before-oom"), 60, "scrape metrics")
    # The rule's warm-up: it watches the pod for its 30 s window before a trend counts.
    time.sleep(31)
    assert capture_dirs(operator.artifact_root) == [], "a calm pod is not captured"

    # 5 MiB/s toward 256Mi: the kill comes in under a minute, the rule looks a minute ahead.
    control(ip, "leak?mbPerSecond=5")
    status = wait_captures(api, namespace, "leaky-before-oom", 1, wait_for, timeout=90)
    last = status["lastCapture"]
    assert last["trigger"] == "threshold"
    assert last["result"] == "Succeeded", last
    assert last["reason"].startswith("leaky: oom-soon: memory "), last["reason"]
    assert " rising " in last["reason"]
    assert ", limit 256Mi in ~" in last["reason"]

    kill = wait_for(lambda: _oom_kill(api, namespace, "leaky"), 120, "the OOM kill")
    assert (kill["exitCode"], kill["restartCount"]) == (137, 1)
    [directory] = capture_dirs(operator.artifact_root)
    before = read_metadata(directory)
    assert _time(before["finishedAt"]) < kill["finishedAt"], (before["finishedAt"], kill)
    [heap] = before["profiles"]
    assert heap["parameters"] == {"type": "heap", "gc": True, "pair": 10.0}
    assert "failed" not in heap, heap
    assert (directory / heap["file"]).stat().st_size == heap["bytes"] > 0
    growth = heap["growth"]
    assert "missing" not in growth, growth
    assert (directory / growth["secondFile"]).stat().st_size == growth["secondBytes"] > 0
    # Ten seconds of a 5 MiB/s leak, and the function that leaks it first.
    assert growth["top"][0]["function"] == "main.leakMemory", growth["top"][:3]
    assert 35 * 2**20 < growth["top"][0]["growth"] < 65 * 2**20, growth["top"][0]

    # After the kill: the new container, 30 s into its life, against the capture before it.
    status = wait_captures(api, namespace, "leaky-before-oom", 2, wait_for, timeout=90)
    assert status["lastCapture"]["trigger"] == "restart", status["lastCapture"]
    [after_dir] = [d for d in capture_dirs(operator.artifact_root) if d != directory]
    after = read_metadata(after_dir)
    assert after["restart"]["reason"] == "OOMKilled"
    assert after["previousCapture"] == before["captureId"]
    assert (_time(after["requestedAt"]) - kill["finishedAt"]).total_seconds() >= 30


def test_without_a_rule_the_kill_is_recorded_and_on_restart_captures_the_new_container(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_pod(api, namespace, "leaky", {"app": "leaky"}, memory_limit="256Mi")
    ip = wait_running(api, namespace, "app=leaky", 1, wait_for)["leaky"]
    spec = {
        "selector": {"matchLabels": {"app": "leaky"}},
        "target": {"port": 7777},
        "profiles": [{"type": "heap"}],
        "trigger": {"onRestart": {"reasons": ["OOMKilled"], "after": "5s"}},
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("after-oom", spec))
    wait_for(
        lambda: get_session(api, namespace, "after-oom").get("status", {}).get("phase") == "Armed",
        30,
        "the session to arm",
    )
    control(ip, "leak?mbPerSecond=20")  # 256Mi in about 12 s
    kill = wait_for(lambda: _oom_kill(api, namespace, "leaky"), 60, "the OOM kill")

    def recorded() -> list[dict[str, Any]]:
        restarts: list[dict[str, Any]] = (
            get_session(api, namespace, "after-oom").get("status", {}).get("restarts") or []
        )
        return restarts

    [restart] = wait_for(recorded, 30, "status.restarts to record the kill")
    assert (restart["pod"], restart["container"]) == ("leaky", "app")
    assert (restart["reason"], restart["exitCode"], restart["restartCount"]) == (
        "OOMKilled",
        137,
        1,
    )
    assert _time(restart["finishedAt"]) == kill["finishedAt"]
    wait_for(
        lambda: any(
            r == "ContainerRestarted"
            and m.startswith("Container app of pod leaky restarted (OOMKilled, exit code 137)")
            for _, r, m in session_events(api, namespace, "after-oom")
        ),
        30,
        "the ContainerRestarted event",
    )

    status = wait_captures(api, namespace, "after-oom", 1, wait_for, timeout=60)
    assert status["lastCapture"]["trigger"] == "restart"
    assert status["lastCapture"]["result"] == "Succeeded", status["lastCapture"]
    [directory] = capture_dirs(operator.artifact_root)
    meta = read_metadata(directory)
    assert meta["trigger"]["type"] == "restart"
    assert meta["restart"]["reason"] == "OOMKilled"
    assert meta["restart"]["restartCount"] == 1
    assert "previousCapture" not in meta, "no capture of this pod came before the kill"
    # Captured after the warm-up, so the heap is the new container's, not the leak's.
    assert (_time(meta["requestedAt"]) - kill["finishedAt"]).total_seconds() >= 5
    assert _rss(ip) < 128 * 2**20


def test_a_slow_leak_that_misses_the_horizon_is_not_captured(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_pod(api, namespace, "slow", {"app": "slow"}, memory_limit="256Mi")
    ip = wait_running(api, namespace, "app=slow", 1, wait_for)["slow"]
    spec = {
        "selector": {"matchLabels": {"app": "slow"}},
        "target": {"port": 7777},
        "profiles": [{"type": "heap"}],
        "trigger": {
            "metricsSource": "scrape",
            "interval": "1s",
            "thresholds": [
                {
                    "name": "oom-soon",
                    "metric": "memory",
                    "predict": {"reaches": "limit", "within": "20s", "window": "10s"},
                }
            ],
        },
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("slow", spec))
    wait_for(lambda: _metrics_flowing(api, namespace, "slow"), 60, "scrape metrics")
    # 1 MiB/s from ~20 MiB: 256Mi is about four minutes away, far beyond the 20 s horizon.
    control(ip, "leak?mbPerSecond=1")
    rss = _rss(ip)
    time.sleep(25)  # more than the window and the horizon: the trend is known, and short
    assert _rss(ip) > rss + 15 * 2**20, "the pod did leak"
    status = get_session(api, namespace, "slow")["status"]
    assert status.get("captures", {}).get("total", 0) == 0, status
    assert capture_dirs(operator.artifact_root) == []
    rules = next(c for c in status["conditions"] if c["type"] == "RulesApplicable")
    assert rules["status"] == "True", rules


def _rss(ip: str) -> float:
    with urllib.request.urlopen(f"http://{ip}:7777/metrics", timeout=5) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1])
    raise AssertionError("pprof-target serves no process_resident_memory_bytes")
