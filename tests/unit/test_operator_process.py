"""The test kit's OperatorProcess: what the operator sees in its environment, as tests, benchmarks
and the demo start it."""

from __future__ import annotations

from pathlib import Path

import pytest
from localcluster.operator_process import OperatorProcess


def _operator(settings: dict[str, str] | None = None) -> OperatorProcess:
    operator = OperatorProcess(Path("/k/kubeconfig"), Path("/a"), Path("/l/operator.log"), ["ns"])
    if settings is not None:
        operator.settings = settings
    return operator


def test_the_operator_sees_its_kubeconfig_artifact_root_and_loopback_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPIKEPROF_KUBECONFIG", "/the/harness/own")
    monkeypatch.setenv("KUBECONFIG", "/the/harness/cluster")
    operator = _operator()
    env = operator.environment()

    assert env["KUBECONFIG"] == "/k/kubeconfig"
    assert env["SPIKEPROF_ARTIFACT_ROOT"] == "/a"
    assert "SPIKEPROF_KUBECONFIG" not in env  # the harness's own never leaks in
    assert {k: v for k, v in env.items() if k.startswith("SPIKEPROF_") and "PORT" not in k} == {
        "SPIKEPROF_ARTIFACT_ROOT": "/a",
        "SPIKEPROF_METRICS_ADDRESS": "127.0.0.1",
        "SPIKEPROF_POLL_SECONDS": "0.5",
        "SPIKEPROF_ALERTS_ADDRESS": "127.0.0.1",
    }
    assert env["SPIKEPROF_METRICS_PORT"] == str(operator.metrics_port) != "0"
    assert env["SPIKEPROF_ALERTS_PORT"] == str(operator.alerts_port) != "0"
    assert operator.metrics_port != operator.alerts_port


def test_a_tests_env_overrides_the_settings_and_unset_names_are_removed_last() -> None:
    operator = _operator(settings={"SPIKEPROF_METRICS_PORT": "0", "SPIKEPROF_ALERTS_PORT": "0"})
    operator.env = {"SPIKEPROF_ALERTS_PORT": "9999", "SPIKEPROF_KUBECONFIG": "/k/kubeconfig"}
    operator.unset_env = {"KUBECONFIG"}
    env = operator.environment()

    assert (env["SPIKEPROF_METRICS_PORT"], env["SPIKEPROF_ALERTS_PORT"]) == ("0", "9999")
    assert "SPIKEPROF_POLL_SECONDS" not in env  # settings given replace the loopback ones
    assert env["SPIKEPROF_KUBECONFIG"] == "/k/kubeconfig"
    assert "KUBECONFIG" not in env
