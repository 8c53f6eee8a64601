"""Every profile type the CRD offers is fetched, checked and readable; the operator counts them."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]

from .conftest import Operator
from .sessions import (
    capture_dirs,
    create_pod,
    create_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def test_block_mutex_threadcreate_and_trace_are_captured_and_readable(
    namespace: str, api: client.ApiClient, operator: Operator, wait_for: Callable[..., Any]
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
