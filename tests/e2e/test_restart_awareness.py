"""Restart awareness on the local cluster: a container the stand-in OOM-kills (as the kernel and
the kubelet do: lastState.terminated OOMKilled/137, restartCount + 1) is recorded by every session
selecting it, and trigger.onRestart captures the new container after its warm-up, naming the
capture before the restart so that `spikeprof captures diff` compares the two."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    captures_cli,
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

WARM_UP = 3.0


def _session(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return session_body(
        name,
        {
            "selector": {"matchLabels": {"app": "leaky"}},
            "target": {"port": 7777},
            "profiles": [{"type": "heap"}],
            "trigger": trigger,
            "limits": {"cooldown": "1s"},
            "output": {"volume": {}},
        },
    )


def _restarts(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = (get_session(api, namespace, name).get("status") or {}).get(
        "restarts"
    ) or []
    return records


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _captures(operator: OperatorProcess, *args: str) -> str:
    return captures_cli(operator.artifact_root, *args)


def test_an_oom_killed_container_is_recorded_and_captured_again_after_its_warm_up(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    create_pod(api, namespace, "leaky", {"app": "leaky"}, memory_limit="128Mi")
    ip = wait_running(api, namespace, "app=leaky", 1, wait_for)["leaky"]
    on_restart = {"reasons": ["OOMKilled"], "after": f"{WARM_UP:g}s"}
    create_session(
        api, namespace, _session("restarts", {"immediate": True, "onRestart": on_restart})
    )
    # No onRestart, no other trigger: it records the restart and captures nothing.
    create_session(api, namespace, _session("watching", {}))
    first = wait_captures(api, namespace, "restarts", 1, wait_for)["lastCapture"]
    wait_for(
        lambda: (
            (get_session(api, namespace, "watching").get("status") or {}).get("phase") == "Armed"
        ),
        60,
        "watching armed",
    )

    control(ip, "leak?mbPerSecond=40")  # past 128Mi in about 3 s: the stand-in OOM-kills it

    status = wait_captures(api, namespace, "restarts", 2, wait_for, timeout=120)
    (record,) = status["restarts"]
    uid = client.CoreV1Api(api).read_namespaced_pod("leaky", namespace).metadata.uid
    assert {
        k: record[k] for k in ("pod", "podUID", "container", "reason", "exitCode", "restartCount")
    } == {
        "pod": "leaky",
        "podUID": uid,
        "container": "app",
        "reason": "OOMKilled",
        "exitCode": 137,
        "restartCount": 1,
    }
    assert record["previousCapture"] == first["id"]
    second = status["lastCapture"]
    assert second["trigger"] == "restart" and second["result"] == "Succeeded"
    assert record["capture"] == second["id"]
    assert status["restartsSeen"] == {f"{uid}/app": 1}

    # After the warm-up, counted from the new container's start.
    running = client.CoreV1Api(api).read_namespaced_pod("leaky", namespace).status
    started = running.container_statuses[0].state.running.started_at
    assert _time(second["time"]) >= started + datetime.timedelta(seconds=WARM_UP)
    assert _time(record["captureDue"]) == started + datetime.timedelta(seconds=WARM_UP)

    told = [
        m
        for _, reason, m in session_events(api, namespace, "restarts")
        if reason == "ContainerRestarted"
    ]
    assert told == [
        f"Container app of pod leaky restarted (OOMKilled, exit code 137); restart count 1; "
        f"trigger.onRestart captures it in {told[0].split('captures it in ')[1].split(';')[0]}; "
        f"its last capture before the restart is {first['id']}."
    ]

    # The capture names the restart and the capture before it; captures diff compares them.
    (after_dir,) = [d for d in operator.artifact_root.rglob(second["id"]) if d.is_dir()]
    metadata = read_metadata(after_dir)
    assert metadata["trigger"]["type"] == "restart"
    assert metadata["previousCapture"] == first["id"]
    assert metadata["restart"]["reason"] == "OOMKilled"
    assert metadata["restart"]["exitCode"] == 137
    before_ref = f"{namespace}/restarts/leaky/{first['id']}"
    after_ref = f"{namespace}/restarts/leaky/{second['id']}"
    shown = _captures(operator, "show", after_ref)
    assert f"Compare:   spikeprof captures diff {before_ref} {after_ref}" in shown
    diffed = _captures(operator, "diff", before_ref, after_ref, "--type", "heap")
    assert "heap" in diffed

    # The session without onRestart recorded the same restart, with no capture.
    (watched,) = _restarts(api, namespace, "watching")
    assert (watched["reason"], watched["exitCode"], watched["restartCount"]) == (
        "OOMKilled",
        137,
        1,
    )
    assert "captureDue" not in watched and "capture" not in watched
    assert "captures" not in (get_session(api, namespace, "watching").get("status") or {})
    assert any(r == "ContainerRestarted" for _, r, _ in session_events(api, namespace, "watching"))

    # A session created after the restart does not report it: it happened before the session.
    create_session(api, namespace, _session("late", {}))
    wait_for(
        lambda: (get_session(api, namespace, "late").get("status") or {}).get("restartsSeen"),
        60,
        "the late session's baseline",
    )
    assert _restarts(api, namespace, "late") == []
    assert not any(r == "ContainerRestarted" for _, r, _ in session_events(api, namespace, "late"))


@pytest.mark.parametrize(
    ("on_restart", "message"),
    [
        ({"after": "2h"}, "onRestart.after must be a duration up to 1h, such as 30s"),
        ({"after": "soon"}, "onRestart.after must be a duration up to 1h, such as 30s"),
        ({"reasons": ["OOM Killed"]}, "spec.trigger.onRestart.reasons[0]: Invalid value"),
    ],
)
def test_the_api_server_refuses_a_bad_onrestart_with_its_message(
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    on_restart: dict[str, Any],
    message: str,
) -> None:
    body = _session("bad", {"onRestart": on_restart})
    refused = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False)
    assert refused.returncode != 0
    assert message in refused.stderr


def test_onrestart_is_accepted_with_its_default_warm_up_and_kubectl_explain_teaches_it(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    body = _session("oom", {"onRestart": {"reasons": ["OOMKilled"]}})
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
    applied = yaml.safe_load(kubectl("get", "profs", "oom", "-n", namespace, "-o", "yaml").stdout)
    assert applied["spec"]["trigger"]["onRestart"] == {"reasons": ["OOMKilled"], "after": "30s"}
    explained = kubectl("explain", "profilingsessions.spec.trigger.onRestart").stdout
    assert "restartCount grew" in explained
    assert "reasons" in explained and "after" in explained
    status = kubectl("explain", "profilingsessions.status.restarts").stdout
    assert "Container restarts of selected pods" in status
