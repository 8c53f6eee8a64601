"""Leak pairs: two heap profiles of a leaking pod a few seconds apart, and what grew between them.

The pod is pprof-target leaking through main.leakMemory at a known rate (/control/leak); the
operator's growth top must name that site, `go tool pprof` must read both profiles (and its own
-diff_base must agree), and `spikeprof captures show` must print the growth. A pod deleted
between the two profiles keeps the first, and status and metadata.json say why there is no second.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    capture_dirs,
    captures_cli,
    control,
    create_pod,
    create_session,
    read_metadata,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e

MiB = 2**20
LEAK_MIB_PER_SECOND = 10


def _spec(app: str, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {"app": app}},
        "target": {"port": 7777},
        "profiles": profiles,
        "trigger": {"immediate": True},
        "output": {"volume": {}},
    }


def _heap_entry(directory: Path) -> dict[str, Any]:
    profiles = read_metadata(directory)["profiles"]
    entry: dict[str, Any] = next(p for p in profiles if p["parameters"]["type"] == "heap")
    return entry


def _go_tool_pprof(*args: str) -> str:
    done = subprocess.run(
        ["go", "tool", "pprof", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _top_function(pprof_top: str) -> str:
    # The first row after go tool pprof's header line ("flat  flat%  sum%  cum  cum%").
    lines = pprof_top.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["flat", "flat%"])
    name = lines[header + 1].split(maxsplit=5)[5]
    return name.removesuffix(" (inline)")


def test_the_growth_of_a_leak_pair_names_the_leaking_function(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    create_pod(api, namespace, "leaky", {"app": "leaky"})
    ips = wait_running(api, namespace, "app=leaky", 1, wait_for)
    control(ips["leaky"], f"leak?mbPerSecond={LEAK_MIB_PER_SECOND}")
    profiles = [
        # gc: in-use figures as of a collection at each profile, not at whichever GC ran last.
        {"type": "heap", "pair": "3s", "gc": True},
        {"type": "cpu", "duration": "2s"},
    ]
    create_session(api, namespace, session_body("pair", _spec("leaky", profiles)))
    status = wait_captures(api, namespace, "pair", 1, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded", status["lastCapture"]
    assert "incompletePairs" not in status["lastCapture"]

    (directory,) = capture_dirs(operator.artifact_root)
    heap = _heap_entry(directory)
    assert heap["parameters"] == {"type": "heap", "gc": True, "pair": 3.0}
    growth = heap["growth"]
    assert growth["secondFile"] == "heap.second.pb.gz"
    assert (growth["sampleType"], growth["unit"]) == ("inuse_space", "bytes")
    assert 2.5 <= growth["measuredSeconds"] <= 8.0, growth
    top = growth["top"][0]
    assert top["function"] == "main.leakMemory", growth["top"]
    # At least half the leak's rate over the time between the two profiles' own time stamps.
    assert top["growth"] >= LEAK_MIB_PER_SECOND * MiB * growth["measuredSeconds"] / 2, top
    assert top["after"] - top["before"] == top["growth"]
    page = (directory / growth["flamegraph"]).read_text()
    assert growth["flamegraph"] == "heap.growth.html"
    assert "main.leakMemory" in page

    # go tool pprof reads both profiles, and its own diff of them puts the same site on top.
    for name in (heap["file"], growth["secondFile"]):
        assert "flat%" in _go_tool_pprof("-top", str(directory / name))
    diffed = _go_tool_pprof(
        "-top",
        "-sample_index=inuse_space",
        f"-diff_base={directory / heap['file']}",
        str(directory / growth["secondFile"]),
    )
    assert _top_function(diffed) == "main.leakMemory", diffed

    shown = captures_cli(operator.artifact_root, "show", f"{namespace}/pair/leaky/{directory.name}")
    assert "Leak pair: heap.second.pb.gz, 3s later (measured" in shown
    assert "growth flame graph heap.growth.html" in shown
    rows = shown.split("allocation site\n", 1)[1].splitlines()
    assert rows[0].split()[-1] == "main.leakMemory", shown
    assert rows[0].split()[0].startswith("+")

    # captures get checks the second profile's sha256 too: heap, its second, and cpu.
    got = captures_cli(
        operator.artifact_root,
        "get",
        f"{namespace}/pair/leaky/{directory.name}",
        "--to",
        str(tmp_path / "got"),
    )
    assert "3 profile checksum(s) match metadata.json" in got


def test_a_pod_deleted_between_the_two_keeps_the_first_profile_and_says_why(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    create_pod(api, namespace, "short-lived", {"app": "short"})
    ips = wait_running(api, namespace, "app=short", 1, wait_for)
    create_session(
        api,
        namespace,
        session_body("gone", _spec("short", [{"type": "heap", "pair": "10s"}])),
    )
    # Deleted once the first heap profile was asked for, well inside the 10 s between the two.
    wait_for(
        lambda: control(ips["short-lived"], "first-pprof-request").strip() != "0",
        30,
        "the first heap profile of the pair",
    )
    client.CoreV1Api(api).delete_namespaced_pod("short-lived", namespace)

    status = wait_captures(api, namespace, "gone", 1, wait_for)
    last = status["lastCapture"]
    assert last["result"] == "Succeeded", last  # the first profile is the capture's
    assert last["profiles"] == {"succeeded": 1, "failed": 0}
    [incomplete] = last["incompletePairs"]
    assert (incomplete["pod"], incomplete["type"], incomplete["reason"]) == (
        "short-lived",
        "heap",
        "PodGone",
    )
    assert "deleted between the two profiles" in incomplete["message"]

    (directory,) = capture_dirs(operator.artifact_root)
    heap = _heap_entry(directory)
    assert heap["growth"]["missing"]["reason"] == "PodGone"
    assert "flat%" in _go_tool_pprof("-top", str(directory / heap["file"]))
    assert not (directory / "heap.second.pb.gz").exists()


def test_a_container_oom_killed_between_the_two_keeps_the_first_and_names_the_kill(
    namespace: str, api: client.ApiClient, operator: OperatorProcess, wait_for: Callable[..., Any]
) -> None:
    # A 128Mi limit and a 20 MiB/s leak: the stand-in kills it a few seconds into the pair, and
    # restarts it at once; the second profile would come from the new process.
    container = {
        "name": "app",
        "image": "pprof-target",
        "ports": [{"containerPort": 7777}],
        "resources": {"limits": {"memory": "128Mi"}, "requests": {"memory": "128Mi"}},
    }
    client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "oom", "labels": {"app": "oom"}},
            "spec": {"containers": [container]},
        },
    )
    ips = wait_running(api, namespace, "app=oom", 1, wait_for)
    create_session(
        api,
        namespace,
        session_body("killed", _spec("oom", [{"type": "heap", "pair": "15s", "gc": True}])),
    )
    wait_for(
        lambda: control(ips["oom"], "first-pprof-request").strip() != "0",
        30,
        "the first heap profile of the pair",
    )
    control(ips["oom"], "leak?mbPerSecond=20")

    status = wait_captures(api, namespace, "killed", 1, wait_for, timeout=90)
    last = status["lastCapture"]
    assert last["result"] == "Succeeded", last
    [incomplete] = last["incompletePairs"]
    assert incomplete["reason"] == "ContainerRestarted", incomplete
    assert "(OOMKilled, exit code 137)" in incomplete["message"]
    pod = client.CoreV1Api(api).read_namespaced_pod("oom", namespace)
    assert pod.status.container_statuses[0].restart_count >= 1

    (directory,) = capture_dirs(operator.artifact_root)
    heap = _heap_entry(directory)
    assert heap["growth"]["missing"]["reason"] == "ContainerRestarted"
    assert "flat%" in _go_tool_pprof("-top", str(directory / heap["file"]))
    assert not (directory / "heap.second.pb.gz").exists()


def test_the_api_server_refuses_a_pair_on_anything_but_heap(
    namespace: str, api: client.ApiClient
) -> None:
    for profile, message in (
        ({"type": "allocs", "pair": "20s"}, "pair applies only to heap profiles"),
        ({"type": "heap", "pair": "soon"}, "pair must be a Go duration"),
        ({"type": "heap", "pair": "10m"}, "pair must be between 1s and 5m"),
    ):
        with pytest.raises(client.ApiException) as refused:
            create_session(api, namespace, session_body("refused", _spec("x", [profile])))
        assert refused.value.status == 422
        assert message in refused.value.body
