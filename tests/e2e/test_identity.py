"""One identity: kopf's watches and spikeprof's own client log in with the same configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.processes import free_port
from localcluster.sessions import (
    create_pod,
    create_session,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def _home_naming_a_dead_cluster(home: Path) -> Path:
    """A ~/.kube/config whose cluster nothing serves, as on a laptop set up for another cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "elsewhere",
                "cluster": {"server": f"https://127.0.0.1:{free_port()}"},
            }
        ],
        "users": [{"name": "someone", "user": {"token": "not-for-this-cluster"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "someone"}}],
        "current-context": "elsewhere",
    }
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(yaml.safe_dump(config))
    return home


def test_with_only_spikeprof_kubeconfig_set_the_operator_serves_the_cluster_it_names(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    tmp_path: Path,
    wait_for: Callable[..., Any],
) -> None:
    operator_process.env = {
        "SPIKEPROF_KUBECONFIG": str(operator_process.kubeconfig),
        "HOME": str(_home_naming_a_dead_cluster(tmp_path / "home")),
    }
    operator_process.unset_env = {"KUBECONFIG"}
    operator_process.start()
    create_pod(api, namespace, "one", {"app": "one"})
    wait_running(api, namespace, "app=one", 1, wait_for)
    create_session(
        api,
        namespace,
        session_body(
            "now",
            {
                "selector": {"matchLabels": {"app": "one"}},
                "target": {"port": 7777},
                "profiles": [{"type": "goroutine"}],
                "trigger": {"immediate": True},
                "output": {"volume": {}},
            },
        ),
    )
    status = wait_captures(api, namespace, "now", 1, wait_for, timeout=60)
    assert status["lastCapture"]["result"] == "Succeeded"
    log = operator_process.log()
    assert "LoginError" not in log
    assert "not-for-this-cluster" not in log
