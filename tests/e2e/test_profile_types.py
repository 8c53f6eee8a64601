"""Every profile type the CRD offers is fetched, checked and readable; the operator counts them."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    control,
    create_pod,
    create_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def test_block_mutex_threadcreate_and_trace_are_captured_and_readable(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    create_pod(api, namespace, "all-types", {"app": "types"})
    wait_running(api, namespace, "app=types", 1, wait_for)
    profiles = [
        {"type": "block"},
        {"type": "mutex"},
        {"type": "threadcreate"},
        {"type": "trace", "duration": "1s"},
        {"type": "heap", "gc": True},
    ]
    spec = {
        "selector": {"matchLabels": {"app": "types"}},
        "target": {"port": 7777},
        "profiles": profiles,
        "trigger": {"immediate": True},
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("types", spec))
    status = wait_captures(api, namespace, "types", 1, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded"
    (directory,) = capture_dirs(operator.artifact_root)
    meta = read_metadata(directory)
    files = {p["parameters"]["type"]: p["file"] for p in meta["profiles"]}
    assert files == {
        "block": "block.pb.gz",
        "mutex": "mutex.pb.gz",
        "threadcreate": "threadcreate.pb.gz",
        "trace": "trace.out",
        "heap": "heap.pb.gz",
    }
    assert next(p for p in meta["profiles"] if p["parameters"]["type"] == "heap")["parameters"][
        "gc"
    ]
    for kind in ("block", "mutex", "threadcreate", "heap"):
        top = subprocess.run(
            ["go", "tool", "pprof", "-top", str(directory / files[kind])],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert top.returncode == 0, f"{kind}: {top.stderr}"
    assert (directory / "trace.out").read_bytes().startswith(b"go 1.")
    assert "summary" not in next(p for p in meta["profiles"] if p["parameters"]["type"] == "trace")

    # The operator's own metrics count what it did.
    with urllib.request.urlopen(
        f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
    ) as reply:
        metrics = reply.read().decode()
    for kind in files:
        assert f'spikeprof_profiles_total{{result="succeeded",type="{kind}"}} 1.0' in metrics
    assert 'spikeprof_captures_total{result="Succeeded",trigger="immediate"} 1.0' in metrics
    assert "spikeprof_sessions_active 1.0" in metrics


def test_a_baseline_is_taken_first_and_later_captures_are_diffed_against_it(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    create_pod(api, namespace, "calm-then-hot", {"app": "baseline"})
    ips = wait_running(api, namespace, "app=baseline", 1, wait_for)
    spec = {
        "selector": {"matchLabels": {"app": "baseline"}},
        "target": {"port": 7777},
        "profiles": [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}],
        "trigger": {"baseline": True},
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("diffed", spec))
    status = wait_captures(api, namespace, "diffed", 1, wait_for)
    assert status["lastCapture"]["trigger"] == "baseline"
    assert status["baselineCapture"] == status["lastCapture"]["id"]

    control(ips["calm-then-hot"], "burn?cores=1&seconds=30")
    annotate_session(api, namespace, "diffed", "spikeprof.io/capture-now", "hot")
    status = wait_captures(api, namespace, "diffed", 2, wait_for)
    spike = next(
        d for d in capture_dirs(operator.artifact_root) if d.name == status["lastCapture"]["id"]
    )
    cpu = next(p for p in read_metadata(spike)["profiles"] if p["parameters"]["type"] == "cpu")
    versus = cpu["versusBaseline"]
    assert versus["baseline"] == status["baselineCapture"]
    gainers = [row["function"] for row in versus["gainers"][:5]]
    assert "main.burnCPU" in gainers
    page = (spike / versus["flamegraph"]).read_text()
    assert "main.burnCPU" in page
