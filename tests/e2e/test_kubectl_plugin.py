"""`kubectl spikeprof capture POD`, run by the real kubectl through its plugin lookup (the
`kubectl-spikeprof` script on PATH), against the operator: it captures one pod, prints the top
functions and the flame graphs, and deletes its session unless --keep; Ctrl-C deletes it too."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.object_stores import ACCESS_KEY, BUCKET, SECRET_KEY, MinioServer
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import GROUP, PLURAL, VERSION, create_pod, wait_running

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent  # where `kubectl-spikeprof` is installed


@pytest.fixture
def plugin_env(cluster: ControlPlane, bin_dir: Path) -> dict[str, str]:
    """kubectl's environment as a user's shell gives it: the kubeconfig in $KUBECONFIG (a
    --kubeconfig flag before the plugin's name would stop kubectl's plugin lookup), and the
    plugin on PATH."""
    env = dict(os.environ)
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), str(bin_dir), env.get("PATH", "")])
    env.pop("SPIKEPROF_ARTIFACT_ROOT", None)  # the test says where, as a user would, with --root
    return env


@pytest.fixture
def run_kubectl(
    bin_dir: Path, plugin_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "kubectl"), *args],
            env=plugin_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def serving(operator: OperatorProcess, wait_for: Callable[..., Any]) -> OperatorProcess:
    """The operator once started (metrics served, artifact volume made), as a user meets it:
    on a machine this busy, a cold start can take longer than the plugin waits for a capture."""

    def started() -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=2
            ):
                return operator.artifact_root.is_dir()
        except OSError:  # not listening yet
            return False

    wait_for(started, 90, "the operator to start")
    return operator


@pytest.fixture
def burning_pod(api: client.ApiClient, namespace: str, wait_for: Callable[..., Any]) -> str:
    """Two replicas with the same labels, one of them burning a core: only the named one is
    profiled."""
    create_pod(api, namespace, "web-hot", {"app": "web"}, args="--burn 1")
    create_pod(api, namespace, "web-calm", {"app": "web"})
    wait_running(api, namespace, "app=web", 2, wait_for)
    return "web-hot"


def _sessions(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    items: list[dict[str, Any]] = listing["items"]
    return items


def test_kubectl_finds_the_plugin_on_path(
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    listed = run_kubectl("plugin", "list")
    assert str(VENV_BIN / "kubectl-spikeprof") in listed.stdout, listed.stdout + listed.stderr
    helped = run_kubectl("spikeprof", "capture", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: kubectl spikeprof capture")


def test_capture_prints_top_functions_and_flame_graph_and_deletes_its_session(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    burning_pod: str,
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_kubectl(
        "spikeprof", "capture", burning_pod, "-n", namespace, "--cpu", "1s", "--heap",
        "--port", "7777", "--root", str(serving.artifact_root),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Not a terminal: the progress comes as one line per stage instead of a bar.
    stages = result.stderr.splitlines()
    assert stages[0].startswith(f"Waiting for the operator to start capture-{burning_pod}-")
    assert f"Captured {burning_pod}." in stages
    assert stages[-1].startswith(f"Deleting ProfilingSession {namespace}/capture-{burning_pod}-")
    out = result.stdout
    assert re.search(r"^Capture \S+-immediate: Succeeded\.$", out, re.MULTILINE), out
    # The capture as `spikeprof captures show` prints it: the burning goroutine on top.
    assert f"Capture:   {namespace}/capture-{burning_pod}-" in out
    assert "  cpu: cpu.pb.gz" in out and "  heap: heap.pb.gz" in out
    cpu_top = out.split("  cpu: cpu.pb.gz", 1)[1].split("  heap:", 1)[0]
    assert "main.spinHash" in cpu_top or "main.burnCPU" in cpu_top, out
    graphs = dict(re.findall(r"^  (cpu|heap): (/\S+\.html)$", out, re.MULTILINE))
    assert set(graphs) == {"cpu", "heap"}, out
    for graph in graphs.values():
        path = Path(graph)
        assert path.is_file() and path.is_relative_to(serving.artifact_root)
        assert path.parts[-3] == burning_pod  # the named replica only
    pods = {p.name for p in serving.artifact_root.glob(f"{namespace}/*/*")}
    assert pods == {burning_pod}
    assert _sessions(api, namespace) == []


def test_keep_leaves_the_session_in_place(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    burning_pod: str,
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_kubectl(
        "spikeprof", "capture", burning_pod, "-n", namespace, "--heap", "--port", "7777",
        "--root", str(serving.artifact_root), "--keep",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (session,) = _sessions(api, namespace)
    name = session["metadata"]["name"]
    assert f"Kept ProfilingSession {namespace}/{name}" in result.stderr
    assert session["metadata"]["labels"] == {"spikeprof.io/one-shot": "true"}
    assert session["spec"]["selector"] == {"podNames": [burning_pod]}
    assert session["status"]["lastCapture"]["result"] == "Succeeded"


def test_ctrl_c_during_sampling_deletes_the_session(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    burning_pod: str,
    bin_dir: Path,
    plugin_env: dict[str, str],
    wait_for: Callable[..., Any],
) -> None:
    command = [
        str(bin_dir / "kubectl"), "spikeprof", "capture", burning_pod, "-n", namespace,
        "--cpu", "30s", "--port", "7777", "--root", str(serving.artifact_root),
    ]  # fmt: skip
    # kubectl execs the plugin in its own process: the signal reaches the plugin itself.
    process = subprocess.Popen(
        command, env=plugin_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def sampling() -> bool:
        if process.poll() is not None:
            output = process.communicate()
            raise AssertionError(f"kubectl spikeprof ended before Ctrl-C: {output}")
        return any((s.get("status") or {}).get("pendingCapture") for s in _sessions(api, namespace))

    try:
        wait_for(sampling, 60, "the capture to start sampling")
        process.send_signal(signal.SIGINT)
        # It waits for the session to be gone: the operator cancels the capture's daemon, and
        # kopf lets the session go once that has ended (a second or two; it was 10 to 15 s when
        # kopf looked again only at the daemon's 10 s cancellation timeout, and once over 30 s
        # under CI load). The bound is generous: this test is about the outcome, not the time.
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stdout + stderr
    assert re.search(r"Cancelled; ProfilingSession \S+ was deleted\.", stderr), stderr
    assert "Traceback" not in stderr
    assert _sessions(api, namespace) == []


def test_a_pod_that_does_not_exist_is_one_clear_sentence(
    namespace: str,
    api: client.ApiClient,
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_kubectl("spikeprof", "capture", "nowhere", "-n", namespace, "--heap")
    assert result.returncode == 1
    assert result.stderr == (
        f"kubectl spikeprof: There is no pod nowhere in namespace {namespace}.\n"
    )
    assert _sessions(api, namespace) == []


def test_a_failed_profile_ends_with_its_reason_from_the_status(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    wait_for: Callable[..., Any],
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    create_pod(api, namespace, "deaf", {"app": "deaf"}, port=None)  # nothing listens on 7777
    wait_running(api, namespace, "app=deaf", 1, wait_for)
    result = run_kubectl(
        "spikeprof", "capture", "deaf", "-n", namespace, "--heap", "--port", "7777",
        "--root", str(serving.artifact_root),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^Capture \S+-immediate: Failed\.$", result.stdout, re.MULTILINE)
    assert re.search(r"^  failed: deaf heap: ConnectionRefused, ", result.stdout, re.MULTILINE)
    assert _sessions(api, namespace) == []


def test_a_user_who_may_not_create_sessions_is_told_so(
    namespace: str,
    api: client.ApiClient,
    cluster: ControlPlane,
    burning_pod: str,
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
    plugin_env: dict[str, str],
    tmp_path: Path,
) -> None:
    viewer = cluster.service_account_with_rules(
        namespace,
        "viewer",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {
                "apiGroups": ["spikeprof.io"],
                "resources": ["profilingsessions"],
                "verbs": ["get", "list", "watch"],
            },
        ],
        tmp_path / "viewer.kubeconfig",
    )
    plugin_env["KUBECONFIG"] = str(viewer)
    result = run_kubectl("spikeprof", "capture", burning_pod, "-n", namespace, "--heap")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"kubectl spikeprof: You may not create ProfilingSessions in namespace {namespace}: "
    ), result.stderr
    assert "cannot create resource" in result.stderr and "Traceback" not in result.stderr
    assert _sessions(api, namespace) == []


def test_on_a_terminal_the_progress_is_a_bar_over_the_sampling(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    burning_pod: str,
    bin_dir: Path,
    plugin_env: dict[str, str],
) -> None:
    # stderr on a pseudo-terminal, as in a person's shell; stdout piped, to read the report.
    controller, terminal = pty.openpty()
    env = {**plugin_env, "TERM": "xterm-256color", "COLUMNS": "120"}
    command = [
        str(bin_dir / "kubectl"), "spikeprof", "capture", burning_pod, "-n", namespace,
        "--cpu", "2s", "--port", "7777", "--root", str(serving.artifact_root),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        drawn.extend(chunk)
    os.close(controller)
    stdout, _ = process.communicate(timeout=60)
    screen = drawn.decode(errors="replace")
    assert process.returncode == 0, stdout + screen
    assert f"sampling {burning_pod} (cpu)" in screen
    assert "━" in screen  # rich's bar
    assert "\x1b[" in screen  # redrawn in place, not line by line
    assert "Waiting for the operator" not in screen  # the lines are for pipes only
    assert re.search(r"^Capture \S+-immediate: Succeeded\.$", stdout, re.MULTILINE)
    assert _sessions(api, namespace) == []


def test_with_store_the_session_uploads_there_and_the_capture_is_read_from_it(
    namespace: str,
    api: client.ApiClient,
    serving: OperatorProcess,
    burning_pod: str,
    minio: MinioServer,
    run_kubectl: Callable[..., subprocess.CompletedProcess[str]],
    plugin_env: dict[str, str],
) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "s3-creds"},
            "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        },
    )
    plugin_env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    store = f"s3://{BUCKET}/plugin-{namespace}"
    result = run_kubectl(
        "spikeprof", "capture", burning_pod, "-n", namespace, "--cpu", "1s", "--port", "7777",
        "--store", store, "--endpoint", minio.endpoint, "--allow-http", "--store-secret", "s3-creds",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    graph = re.search(r"^  cpu: (\S+\.html)$", result.stdout, re.MULTILINE)
    assert graph is not None, result.stdout
    assert graph[1].startswith(f"{store}/{namespace}/capture-{burning_pod}-")
    assert "main.spinHash" in result.stdout or "main.burnCPU" in result.stdout
    # Only the store: nothing stays in the operator's volume once uploaded.
    assert not list(serving.artifact_root.rglob("metadata.json"))
    assert _sessions(api, namespace) == []
