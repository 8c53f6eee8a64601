"""API server outages: the real kube-apiserver is killed and started again, twice, under one
operator. A spike during the outage is captured from the pods the operator already knows, and
recorded once when the API server is back; a session created then is served within seconds.

The outages have a control plane of their own, so that the other tests' cluster never loses its
API server. They take about three minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    capture_dirs,
    control,
    create_namespace,
    create_pod,
    create_session,
    get_session,
    read_metadata,
    session_body,
    session_events,
    wait_running,
)
from localcluster.waiting import wait_for

from .conftest import CRD

pytestmark = pytest.mark.e2e

RECOVERY_LIMIT_SECONDS = 10.0
"""At most this long from the API server's /readyz answering ok to a new session being served."""

BURN_SECONDS = 20  # the spike: shorter than either outage, so it begins and ends in the dark


@pytest.fixture(scope="module")
def outage_cluster(
    bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("outage-cluster"), bin_dir, crds=(CRD,))
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def outage_api(outage_cluster: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(outage_cluster.kubeconfig))


@pytest.fixture(scope="module")
def outage_namespace(outage_api: client.ApiClient) -> str:
    name = "outages"
    create_namespace(outage_api, name, wait_for, timeout=60)
    return name


@pytest.fixture(scope="module")
def hot_pods(outage_api: client.ApiClient, outage_namespace: str) -> dict[str, str]:
    for name in ("hot-a", "hot-b"):
        create_pod(outage_api, outage_namespace, name, {"app": "hot"}, cpu_limit="500m")
    return wait_running(outage_api, outage_namespace, "app=hot", 2, wait_for)


@pytest.fixture(scope="module")
def outage_operator(
    outage_cluster: ControlPlane,
    outage_api: client.ApiClient,
    outage_namespace: str,
    hot_pods: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    work = tmp_path_factory.mktemp("outage-operator")
    op = OperatorProcess(
        outage_cluster.kubeconfig, work / "artifacts", work / "operator.log", [outage_namespace]
    )
    op.start()
    # Scraped from the pods themselves and profiled by dialling their IPs: neither goes through
    # the API server, so a spike in an outage can be seen and captured.
    create_session(
        outage_api,
        outage_namespace,
        session_body(
            "spikes",
            {
                "selector": {"matchLabels": {"app": "hot"}},
                "target": {"port": 7777, "access": "direct"},
                "profiles": [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}],
                "trigger": {
                    "metricsSource": "scrape",
                    "interval": "1s",
                    "thresholds": [
                        {
                            "name": "cpu-hot",
                            "metric": "cpu",
                            "above": "60%",
                            "of": "limit",
                            "for": "2s",
                        }
                    ],
                },
                "limits": {"cooldown": "10m"},
                "output": {"volume": {}},
            },
        ),
    )
    wait_for(
        lambda: _condition(get_session(outage_api, outage_namespace, "spikes"), "MetricsAvailable"),
        60,
        "the scraped metrics to arrive",
    )
    yield op
    op.stop()


def _condition(session: dict[str, Any], kind: str) -> bool:
    conditions = (session.get("status") or {}).get("conditions") or ()
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def _served(api: client.ApiClient, namespace: str, name: str) -> bool:
    """The operator has looked at the session: phase and Ready are in its status."""
    session = get_session(api, namespace, name)
    return bool((session.get("status") or {}).get("phase")) and _condition(session, "Ready")


@pytest.mark.parametrize(("down_for", "pod"), [(30, "hot-a"), (90, "hot-b")])
def test_an_api_outage_loses_no_spike_and_delays_new_sessions_by_seconds(
    down_for: int,
    pod: str,
    outage_cluster: ControlPlane,
    outage_api: client.ApiClient,
    outage_namespace: str,
    outage_operator: OperatorProcess,
    hot_pods: dict[str, str],
) -> None:
    api, namespace, root = outage_api, outage_namespace, outage_operator.artifact_root
    before = get_session(api, namespace, "spikes")["status"]
    captured_before = before.get("captures", {}).get("total", 0)
    dirs_before = set(capture_dirs(root))

    outage_cluster.kill_apiserver()
    killed = time.monotonic()
    control(hot_pods[pod], f"burn?cores=1&seconds={BURN_SECONDS}")
    # The capture happens in the dark: its files are published while the API server is away.
    new = wait_for(
        lambda: set(capture_dirs(root)) - dirs_before, down_for - 3, f"a capture of {pod}"
    )
    assert time.monotonic() - killed < down_for
    (directory,) = new
    assert directory.parent.name == pod
    capture_id = read_metadata(directory)["captureId"]
    assert directory.name == capture_id
    time.sleep(max(0.0, down_for - (time.monotonic() - killed)))

    ready_at = outage_cluster.restart_apiserver()
    name = f"after-{down_for}s"
    create_session(
        api,
        namespace,
        session_body(
            name,
            {
                "selector": {"matchLabels": {"app": "hot"}},
                "target": {"port": 7777, "access": "direct"},
                "profiles": [{"type": "goroutine"}],
                "output": {"volume": {}},
            },
        ),
    )
    wait_for(lambda: _served(api, namespace, name), 60, f"session {name} to be served")
    recovery = time.monotonic() - ready_at
    print(f"\n{down_for}s outage: /readyz ok -> new session served in {recovery:.1f}s")

    # Recorded once the API server answers, under the id the files carry; nothing doubled.
    def recorded() -> dict[str, Any] | None:
        status: dict[str, Any] = get_session(api, namespace, "spikes")["status"]
        done = status.get("captures", {}).get("total") == captured_before + 1
        return status if done and not status.get("pendingCapture") else None

    status = wait_for(recorded, 30, f"capture {capture_id} in the status")
    assert status["lastCapture"]["id"] == capture_id
    assert status["lastCapture"]["result"] == "Succeeded"
    assert [c["id"] for c in status["recentCaptures"]].count(capture_id) == 1

    def events_of_capture() -> list[str] | None:
        reasons = [
            reason
            for _, reason, message in session_events(api, namespace, "spikes")
            if capture_id in message
        ]
        return reasons if "Captured" in reasons else None

    reasons = wait_for(events_of_capture, 30, f"the events of capture {capture_id}")
    time.sleep(5)  # time for a duplicate to show, if there were one
    assert sorted(events_of_capture() or ()) == ["CaptureStarted", "Captured"]
    status = get_session(api, namespace, "spikes")["status"]
    assert status["captures"]["total"] == captured_before + 1
    assert set(capture_dirs(root)) - dirs_before == {directory}
    assert sorted(reasons) == ["CaptureStarted", "Captured"]
    assert recovery <= RECOVERY_LIMIT_SECONDS, (
        f"a new session was served {recovery:.1f}s after the API server was ready again"
    )
