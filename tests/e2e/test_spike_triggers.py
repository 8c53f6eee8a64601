"""Captures on spikes, from each metric source, with pods really burning CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.peers import Prometheus
from localcluster.sessions import (
    capture_dirs,
    control,
    create_pod,
    create_session,
    get_session,
    session_body,
    session_events,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def _spike_session(trigger: dict[str, Any]) -> dict[str, Any]:
    return session_body(
        "spikes",
        {
            "selector": {"matchLabels": {"app": "hot"}},
            "target": {"port": 7777},
            "profiles": [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}],
            "trigger": {
                **trigger,
                "thresholds": [
                    {"name": "cpu-hot", "metric": "cpu", "above": "60%", "of": "limit", "for": "2s"}
                ],
            },
            "limits": {"cooldown": "10m"},
            "output": {"volume": {}},
        },
    )


def _burn_and_expect_capture(
    api: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
    ips: dict[str, str],
    source: str,
) -> dict[str, Any]:
    # Calm first: the session reports its metrics and captures nothing.
    wait_for(
        lambda: any(
            c["type"] == "MetricsAvailable" and c["status"] == "True"
            for c in get_session(api, namespace, "spikes").get("status", {}).get("conditions", [])
        ),
        60,
        f"{source} metrics to arrive",
    )
    assert capture_dirs(operator.artifact_root) == []
    control(ips["hot-a"], "burn?cores=1&seconds=120")
    status = wait_captures(api, namespace, "spikes", 1, wait_for, timeout=120)
    last = status["lastCapture"]
    assert last["trigger"] == "threshold"
    assert last["pods"] == 1
    assert last["reason"].startswith("hot-a: cpu-hot: cpu ")
    assert "above 300m (60% of limit 500m) for " in last["reason"]
    assert [d.parent.name for d in capture_dirs(operator.artifact_root)] == ["hot-a"]
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds["TargetsReachable"] == kinds["RulesApplicable"] == "True"
    condition = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert condition["message"].startswith(f"{source}: metrics for ")
    return status


def _two_hot_pods(
    api: client.ApiClient, namespace: str, wait_for: Callable[..., Any]
) -> dict[str, str]:
    for name in ("hot-a", "hot-b"):
        create_pod(api, namespace, name, {"app": "hot"}, cpu_limit="500m")
    return wait_running(api, namespace, "app=hot", 2, wait_for)


def test_scrape_source_captures_the_pod_that_burns_cpu_and_holds_it_in_cooldown(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    ips = _two_hot_pods(api, namespace, wait_for)
    create_session(api, namespace, _spike_session({"metricsSource": "scrape", "interval": "1s"}))
    _burn_and_expect_capture(api, namespace, operator, wait_for, ips, "scrape")

    # Hysteresis, then cooldown: calm down, burn again; the rule fires, the guard holds it.
    control(ips["hot-a"], "reset")
    wait_for(lambda: _cpu_below(ips["hot-a"]), 30, "hot-a to calm down")
    control(ips["hot-a"], "burn?cores=1&seconds=120")
    status = wait_for(
        lambda: get_session(api, namespace, "spikes")["status"].get("suppressed"),
        60,
        "a suppression",
    )
    assert status["total"] == 1
    assert status["last"]["guard"] == "Cooldown"
    assert status["last"]["pod"] == "hot-a"
    assert "its cooldown of 10m has" in status["last"]["message"]
    assert get_session(api, namespace, "spikes")["status"]["captures"]["total"] == 1
    events = session_events(api, namespace, "spikes")
    assert any(
        r == "CaptureSuppressed" and "Rule cpu-hot fired on pod hot-a" in m for _, r, m in events
    )


def _cpu_below(ip: str) -> bool:
    import time
    import urllib.request

    def cpu() -> float:
        with urllib.request.urlopen(f"http://{ip}:7777/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("process_cpu_seconds_total "):
                    return float(line.split()[1])
        raise AssertionError("no process_cpu_seconds_total")

    first = cpu()
    time.sleep(1.5)
    return (cpu() - first) / 1.5 < 0.1


def test_prometheus_source_captures_through_a_real_prometheus(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ips = _two_hot_pods(api, namespace, wait_for)
    prometheus = Prometheus(tmp_path / "prometheus", namespace)
    prometheus.start()
    prometheus.set_targets(ips)
    try:
        operator_process.env["SPIKEPROF_PROMETHEUS_URL"] = prometheus.url
        operator_process.start()
        # The targets serve Go's process metrics, not cAdvisor's: override the CPU query.
        query = 'sum by (pod) (rate(process_cpu_seconds_total{namespace="$namespace"}[3s]))'
        create_session(
            api,
            namespace,
            _spike_session(
                {"metricsSource": "prometheus", "interval": "1s", "prometheus": {"cpuQuery": query}}
            ),
        )
        _burn_and_expect_capture(api, namespace, operator_process, wait_for, ips, "prometheus")
    finally:
        prometheus.stop()


def test_metrics_server_source_captures_through_the_aggregation_layer(
    namespace: str,
    api: client.ApiClient,
    metrics_api: ControlPlane,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    ips = _two_hot_pods(api, namespace, wait_for)
    create_session(
        api, namespace, _spike_session({"metricsSource": "metricsServer", "interval": "1s"})
    )
    _burn_and_expect_capture(api, namespace, operator, wait_for, ips, "metricsServer")


def test_an_unreachable_prometheus_is_reported_not_fatal(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    _two_hot_pods(api, namespace, wait_for)
    operator_process.env["SPIKEPROF_PROMETHEUS_URL"] = "http://127.0.0.1:9"  # discard port: refused
    operator_process.start()
    create_session(
        api, namespace, _spike_session({"metricsSource": "prometheus", "interval": "1s"})
    )

    def failed_condition() -> dict[str, Any] | None:
        conditions = get_session(api, namespace, "spikes").get("status", {}).get("conditions", [])
        return next(
            (c for c in conditions if c["type"] == "MetricsAvailable" and c["status"] == "False"),
            None,
        )

    condition = wait_for(failed_condition, 30, "MetricsAvailable=False")
    assert condition["reason"] == "SourceFailed"
    assert condition["message"].startswith(
        "prometheus: Prometheus at http://127.0.0.1:9: ConnectError"
    )
    assert get_session(api, namespace, "spikes")["status"]["phase"] == "Armed"
