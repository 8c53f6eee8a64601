"""A session from examples/ captures every selected pod on demand, and says so in status and events."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    read_metadata,
    session_events,
    wait_captures,
    wait_running,
)

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_example_session_captures_every_pod_with_readable_artifacts(
    namespace: str,
    api: client.ApiClient,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    kubectl(
        "apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "checkout-deployment.yaml")
    )
    pods = wait_running(api, namespace, "app=checkout", 3, wait_for)
    kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "ondemand-cpu-heap.yaml"))

    status = wait_captures(api, namespace, "checkout-now", 1, wait_for)
    assert status["phase"] == "Armed"
    assert status["targets"] == {"matched": 3, "reachable": 3, "summary": "3/3"}
    assert status["captures"]["total"] == 1
    assert status["captures"]["failed"] == 0
    assert status["lastCapture"]["result"] == "Succeeded"
    assert status["lastCapture"]["profiles"] == {"succeeded": 12, "failed": 0}

    dirs = capture_dirs(operator.artifact_root)
    assert {d.parent.name for d in dirs} == set(pods)
    example = yaml.safe_load((REPO_ROOT / "examples" / "ondemand-cpu-heap.yaml").read_text())
    wanted = {p["type"] for p in example["spec"]["profiles"]}
    for directory in dirs:
        assert directory.parts[-4:-1] == (namespace, "checkout-now", directory.parent.name)
        assert directory.name.endswith("-immediate")
        meta = read_metadata(directory)
        assert meta["session"] == "checkout-now"
        assert meta["pod"] == directory.parent.name
        assert meta["node"] == "stand-in-node"
        assert meta["container"] == "checkout"
        assert meta["trigger"]["type"] == "immediate"
        assert meta["operatorVersion"]
        assert {p["parameters"]["type"] for p in meta["profiles"]} == wanted
        for profile in meta["profiles"]:
            kind = profile["parameters"]["type"]
            # People read the summary and the flame graph; go tool pprof reads the raw file.
            default = profile["summary"]["defaultSampleType"]
            top = next(t for t in profile["summary"]["sampleTypes"] if t["type"] == default)
            # An idle pod's CPU profile may hold no sample at all; the others always have stacks.
            assert top["functions"] or kind == "cpu", f"{kind}: a summary with its top functions"
            if kind in ("cpu", "heap", "allocs"):
                page = (directory / profile["flamegraph"]).read_text()
                assert page.lstrip().lower().startswith("<!doctype html>")
                if top["functions"]:
                    assert top["functions"][0]["function"] in page
            else:
                assert "flamegraph" not in profile
            data = (directory / profile["file"]).read_bytes()
            assert profile["bytes"] == len(data)
            assert profile["sha256"] == hashlib.sha256(data).hexdigest()
            go_top = subprocess.run(
                ["go", "tool", "pprof", "-top", str(directory / profile["file"])],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert go_top.returncode == 0, f"{profile['file']}: {go_top.stderr}"
            assert "Showing nodes" in go_top.stdout
        assert not list(directory.parent.glob(".*")), "no staging leftovers"

    table = kubectl("get", "profilingsessions", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "PHASE", "TARGETS", "CAPTURES", "FAILED"]
    assert "checkout-now" in table and "Armed" in table and "3/3" in table

    described = kubectl("describe", "profs", "checkout-now", "-n", namespace).stdout
    assert "TargetsReachable" in described
    assert "3 of 3 pod(s) matching app=checkout are ready to profile." in described
    assert "CaptureStarted" in described
    assert "took 12 profile(s) from 3 pod(s)" in described


def test_capture_now_annotation_captures_once_per_new_value(
    namespace: str,
    api: client.ApiClient,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    kubectl(
        "apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "checkout-deployment.yaml")
    )
    wait_running(api, namespace, "app=checkout", 3, wait_for)
    session = yaml.safe_load((REPO_ROOT / "examples" / "ondemand-cpu-heap.yaml").read_text())
    session["spec"]["trigger"]["immediate"] = False
    session["spec"]["profiles"] = [{"type": "heap"}, {"type": "goroutine"}]
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(session))
    wait_for(
        lambda: (
            kubectl(
                "get", "profs", "checkout-now", "-n", namespace, "-o", "jsonpath={.status.phase}"
            ).stdout
            == "Armed"
        ),
        30,
        "phase Armed",
    )
    assert capture_dirs(operator.artifact_root) == []

    annotate_session(api, namespace, "checkout-now", "spikeprof.io/capture-now", "first")
    status = wait_captures(api, namespace, "checkout-now", 1, wait_for)
    assert status["lastCapture"]["trigger"] == "capture-now"
    assert status["captureNowHandled"] == "first"
    assert len(capture_dirs(operator.artifact_root)) == 3

    # The same value again is not a new request; a new value is.
    annotate_session(api, namespace, "checkout-now", "spikeprof.io/capture-now", "first")
    annotate_session(api, namespace, "checkout-now", "spikeprof.io/other", "touch")
    annotate_session(api, namespace, "checkout-now", "spikeprof.io/capture-now", "second")
    status = wait_captures(api, namespace, "checkout-now", 2, wait_for)
    assert status["captures"]["total"] == 2
    assert len(capture_dirs(operator.artifact_root)) == 6
    # kopf posts events in the background: wait for the second one rather than race it.
    wait_for(
        lambda: (
            [r for _t, r, _m in session_events(api, namespace, "checkout-now")].count("Captured")
            == 2
        ),
        30,
        "two Captured events",
    )
