"""`make demo`: a local control plane, a workload with one spiking pod, spikeprof capturing it.

Everything runs on this machine: the control plane is built from Go modules (cached after the
first run), pods are pprof-target processes, and the operator runs as a real process. The demo
cleans up after itself, and stops with an error if any step takes too long.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from localcluster.controlplane import ControlPlane, build_binaries
from localcluster.operator_process import OperatorProcess
from localcluster.waiting import WaitTimeoutError, wait_for

REPO = Path(__file__).resolve().parents[2]

NAMESPACE = "demo"
SESSION = "checkout-spike"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The kit's wait_for, with a dot every 2 s of waiting and a plain failure message."""
    dots = 0

    def progress() -> None:
        nonlocal dots
        dots += 1
        if dots % 4 == 0:
            print(".", end="", flush=True)

    try:
        value = wait_for(predicate, timeout, what, every=0.5, on_wait=progress)
    except WaitTimeoutError as error:
        raise SystemExit(f"demo failed: {error}") from None
    if dots:
        print(flush=True)
    return value


def main() -> int:
    started = time.monotonic()
    step(
        "Building (or reusing) etcd, kube-apiserver, controller-manager, kubectl, helm, "
        "pprof-target, kubelet-standin"
    )
    bin_dir = build_binaries("etcd", "k8s", "helm", "pprof-target", "kubelet-standin")
    workdir = Path(tempfile.mkdtemp(prefix="spikeprof-demo-"))
    plane = ControlPlane(
        workdir / "cluster", bin_dir, crds=(REPO / "crds" / "spikeprof.io_profilingsessions.yaml",)
    )
    operator = None
    try:
        step("Starting a local control plane with the ProfilingSession CRD")
        plane.start()
        print(f"    API server {plane.server} (kubeconfig {plane.kubeconfig})")

        def kubectl(*args: str, input: str | None = None) -> str:
            result = subprocess.run(
                [str(bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
                capture_output=True,
                text=True,
                input=input,
                timeout=60,
            )
            if result.returncode != 0:
                raise SystemExit(f"demo failed: kubectl {' '.join(args)}: {result.stderr}")
            return result.stdout

        kubectl("create", "namespace", NAMESPACE)
        wait(lambda: "default" in kubectl("get", "sa", "-n", NAMESPACE), 30, "the namespace")

        step("Deploying 3 checkout pods that serve Go pprof on :7777")
        kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / "checkout-deployment.yaml"))
        pods = wait(lambda: _running_pods(kubectl), 60, "3 running pods")
        for name, ip in sorted(pods.items()):
            print(f"    {name} at {ip}")

        step("Installing the chart's ServiceAccount and RBAC (helm template charts/spikeprof)")
        rendered = subprocess.run(
            [
                str(bin_dir / "helm"),
                "template",
                "spikeprof",
                str(REPO / "charts" / "spikeprof"),
                "--namespace",
                "spikeprof-system",
                "--kube-version=1.37.2",
                "--set=crds.install=false",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rbac = [
            doc
            for doc in yaml.safe_load_all(rendered)
            if doc and doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
        ]
        kubectl("create", "namespace", "spikeprof-system")
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
        operator_kubeconfig = plane.service_account_kubeconfig(
            "spikeprof-system", "spikeprof", workdir / "operator.kubeconfig"
        )
        rules = next(doc for doc in rbac if doc["kind"] == "ClusterRole")["rules"]
        for rule in rules:
            print(f"    {','.join(rule['resources'])}: {','.join(rule['verbs'])}")

        artifacts = workdir / "artifacts"
        step("Starting the spikeprof operator as that ServiceAccount")
        operator = OperatorProcess(
            operator_kubeconfig,
            artifacts,
            workdir / "operator.log",
            [NAMESPACE],
            # No metrics endpoint and no alert receiver: the demo scrapes pods and reads status.
            settings={"SPIKEPROF_METRICS_PORT": "0", "SPIKEPROF_ALERTS_PORT": "0"},
        )
        operator.start()

        step(
            f"Applying ProfilingSession {SESSION}: "
            "capture a pod whose CPU stays above 60% of its limit for 3s"
        )
        kubectl("apply", "-n", NAMESPACE, "-f", "-", input=_session())
        wait(lambda: _watching(kubectl), 60, "the session to read pod metrics")
        print(
            "    "
            + kubectl("get", "profilingsessions", "-n", NAMESPACE).replace("\n", "\n    ").rstrip()
        )

        hot, hot_ip = sorted(pods.items())[0]
        step(f"Making {hot} spike: burning 1 CPU core (its limit is 500m)")
        with urllib.request.urlopen(
            f"http://{hot_ip}:7777/control/burn?cores=1&seconds=60", timeout=5
        ):
            pass
        status = wait(lambda: _captured(kubectl), 120, "the capture")
        print(
            "    "
            + kubectl("get", "profilingsessions", "-n", NAMESPACE).replace("\n", "\n    ").rstrip()
        )
        last = status["lastCapture"]
        print(
            f"    capture {last['id']}: {last['result']}, "
            f"{last['profiles']['succeeded']} profile(s) from {last['pods']} pod(s)"
        )
        print(f"    why: {last['reason']}")

        capture_dir = artifacts / last["artifacts"][0]
        metadata = json.loads((capture_dir / "metadata.json").read_text())
        cpu = next(p for p in metadata["profiles"] if p["parameters"]["type"] == "cpu")
        summary = next(
            t
            for t in cpu["summary"]["sampleTypes"]
            if t["type"] == cpu["summary"]["defaultSampleType"]
        )
        step(
            f"Top CPU functions of {metadata['pod']} "
            "(from metadata.json; go tool pprof -top agrees)"
        )
        print(f"    {'flat%':>7} {'cum%':>7}  function")
        for row in summary["functions"][:8]:
            print(f"    {row['flatPercent']:6.2f}% {row['cumPercent']:6.2f}%  {row['function']}")
        # The spike's own code: the burning loop holds most of the profile cumulatively, however
        # its flat time ranks against the hashing it calls.
        burner = max(
            summary["functions"],
            key=lambda row: row["cumPercent"] if row["function"].startswith("main.") else -1,
        )
        print(
            f"    spiking code: {burner['function']} "
            f"({burner['cumPercent']:.2f}% of CPU, cumulative)"
        )
        print(f"    flame graph: {capture_dir / cpu['flamegraph']}")
        print(f"    raw profile: {capture_dir / cpu['file']}  (go tool pprof -http=: ...)")
        if burner["function"] != "main.burnCPU" or burner["cumPercent"] < 50:
            raise SystemExit("demo failed: the spiking function does not hold the CPU profile")
        step(
            f"Done in {time.monotonic() - started:.0f}s; stopping the cluster "
            f"(artifacts stay in {artifacts})"
        )
        return 0
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


def _running_pods(kubectl: Callable[..., str]) -> dict[str, str] | None:
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", "app=checkout", "-o", "json"))[
        "items"
    ]
    ips = {
        p["metadata"]["name"]: p["status"].get("podIP")
        for p in pods
        if p["status"].get("phase") == "Running"
    }
    return ips if len(ips) == 3 else None


def _captured(kubectl: Callable[..., str]) -> dict[str, Any] | None:
    session = json.loads(kubectl("get", "profilingsession", SESSION, "-n", NAMESPACE, "-o", "json"))
    status: dict[str, Any] = session.get("status") or {}
    return (
        status
        if status.get("captures", {}).get("total") and not status.get("pendingCapture")
        else None
    )


def _watching(kubectl: Callable[..., str]) -> bool:
    session = json.loads(kubectl("get", "profilingsession", SESSION, "-n", NAMESPACE, "-o", "json"))
    conditions = (session.get("status") or {}).get("conditions") or []
    return any(
        c["type"] == "MetricsAvailable" and c["status"] == "True" and "3 of 3" in c["message"]
        for c in conditions
    )


def _session() -> str:
    return json.dumps(
        {
            "apiVersion": "spikeprof.io/v1alpha1",
            "kind": "ProfilingSession",
            "metadata": {"name": SESSION},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "target": {"port": 7777},
                "profiles": [{"type": "cpu", "duration": "5s"}, {"type": "heap"}],
                "trigger": {
                    "metricsSource": "scrape",
                    "interval": "1s",
                    "thresholds": [
                        {
                            "name": "cpu-hot",
                            "metric": "cpu",
                            "above": "60%",
                            "of": "limit",
                            "for": "3s",
                        }
                    ],
                },
                "limits": {"cooldown": "10m"},
                "output": {"volume": {}},
            },
        }
    )


if __name__ == "__main__":
    sys.exit(main())
