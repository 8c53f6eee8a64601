"""The pod stand-in: a tiny kubelet substitute for the local control plane.

It registers a Node, binds unscheduled pods to it, and for each pod starts a real pprof-target
process on a loopback address of its own (127.0.x.y), then reports the pod Running and Ready with
that address as its podIP. Deleting the pod stops the process. Pod annotations shape the process:

  stand-in.spikeprof.io/args      extra pprof-target flags, space separated (e.g. "-burn=1")
  dapr.io/enabled + dapr.io/enable-profiling (or dapr.io/profiling): as Dapr's injector does,
      a pod gets a daprd stand-in serving pprof on 7777 only when profiling was enabled at creation.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from localcluster.processes import spawn, stop_group

NODE_NAME = "stand-in-node"
ARGS_ANNOTATION = "stand-in.spikeprof.io/args"
DAPR_PROFILE_PORT = 7777

log = logging.getLogger("pod-stand-in")


@dataclass
class RunningPod:
    ip: str
    processes: list[subprocess.Popen[bytes]]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dapr_profiling_enabled(annotations: dict[str, str]) -> bool:
    for key in ("dapr.io/enable-profiling", "dapr.io/profiling"):
        if annotations.get(key, "").lower() == "true":
            return True
    return False


class StandIn:
    def __init__(self, api: Any, pprof_target: Path, log_dir: Path, subnet: int) -> None:
        self.api = api
        self.pprof_target = pprof_target
        self.log_dir = log_dir
        self.pods: dict[str, RunningPod] = {}
        # Pod IPs are 127.<subnet>.x.y: each cluster on the machine has its own range.
        self.next_ip = (subnet << 16) + (1 << 8) + 1
        self.lock = threading.Lock()

    # -- node ------------------------------------------------------------------------------

    def register_node(self) -> None:
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=NODE_NAME, labels={"kubernetes.io/hostname": NODE_NAME}
            )
        )
        with contextlib.suppress(ApiException):
            self.api.create_node(node)
        self.api.patch_node_status(
            NODE_NAME,
            {
                "status": {
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "StandInReady",
                            "message": "the pod stand-in is running",
                            "lastHeartbeatTime": _now(),
                            "lastTransitionTime": _now(),
                        }
                    ],
                }
            },
        )

    # -- pods ------------------------------------------------------------------------------

    def allocate_ip(self) -> str:
        with self.lock:
            n = self.next_ip
            self.next_ip += 1
            while self.next_ip & 0xFF in (0, 255):  # skip network and broadcast-looking hosts
                self.next_ip += 1
        return f"127.{(n >> 16) & 0xFF}.{(n >> 8) & 0xFF}.{n & 0xFF}"

    def handle(self, event_type: str, pod: Any) -> None:
        meta = pod.metadata
        uid = meta.uid
        if event_type == "DELETED":
            self.stop_pod(uid)
            return
        if meta.deletion_timestamp is not None:
            self.stop_pod(uid)
            with contextlib.suppress(ApiException):
                # With a body, the API server reads the grace period from it, not the query.
                self.api.delete_namespaced_pod(
                    meta.name,
                    meta.namespace,
                    body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
                    ),
                )
            return
        if not pod.spec.node_name:
            self.bind(pod)
            return
        if pod.spec.node_name != NODE_NAME or uid in self.pods:
            return
        if pod.status.phase in ("Succeeded", "Failed"):
            return
        self.start_pod(pod)

    def bind(self, pod: Any) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(kind="Node", name=NODE_NAME, api_version="v1"),
        )
        try:
            # The generated client cannot deserialize a Binding reply; the raw reply is enough.
            self.api.create_namespaced_binding(pod.metadata.namespace, body, _preload_content=False)
        except ApiException as error:
            if error.status != 409:  # already bound by an earlier event
                log.warning(
                    "binding %s/%s failed: %s", pod.metadata.namespace, pod.metadata.name, error
                )

    def plan_processes(self, pod: Any, ip: str) -> list[list[str]]:
        annotations = pod.metadata.annotations or {}
        extra = shlex.split(annotations.get(ARGS_ANNOTATION, ""))
        commands: list[list[str]] = []
        for container in pod.spec.containers:
            ports = [p.container_port for p in (container.ports or [])]
            if container.name == "daprd":
                if not ports:
                    ports = [3500]
                profiling = _dapr_profiling_enabled(annotations)
                cmd = [str(self.pprof_target), f"-listen={ip}:{ports[0]}", "-pprof=false"]
                if profiling:
                    cmd.append(f"-pprof-listen={ip}:{DAPR_PROFILE_PORT}")
                commands.append(cmd + extra)
            elif ports:
                commands.append([str(self.pprof_target), f"-listen={ip}:{ports[0]}", *extra])
        return commands

    def start_pod(self, pod: Any) -> None:
        meta = pod.metadata
        ip = self.allocate_ip()
        procs = []
        for index, cmd in enumerate(self.plan_processes(pod, ip)):
            log_path = self.log_dir / f"{meta.namespace}_{meta.name}_{index}.log"
            procs.append(spawn(cmd, log_path))
        self.pods[meta.uid] = RunningPod(ip, procs)
        for cmd in self.plan_processes(pod, ip):
            listen = next(a for a in cmd if a.startswith("-listen="))
            _wait_listening(listen.removeprefix("-listen="))
        started = _now()
        statuses = [
            {
                "name": c.name,
                "image": c.image or "pprof-target",
                "imageID": "stand-in://pprof-target",
                "containerID": f"stand-in://{meta.uid}/{c.name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
            for c in pod.spec.containers
        ]
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": started}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        try:
            self.api.patch_namespaced_pod_status(
                meta.name,
                meta.namespace,
                {
                    "status": {
                        "phase": "Running",
                        "hostIP": "127.0.0.1",
                        "hostIPs": [{"ip": "127.0.0.1"}],
                        "podIP": ip,
                        "podIPs": [{"ip": ip}],
                        "startTime": started,
                        "conditions": conditions,
                        "containerStatuses": statuses,
                    }
                },
            )
            log.info("pod %s/%s running at %s", meta.namespace, meta.name, ip)
        except ApiException as error:
            log.warning("status of %s/%s not set: %s", meta.namespace, meta.name, error)

    def stop_pod(self, uid: str) -> None:
        running = self.pods.pop(uid, None)
        if running is None:
            return
        for proc in running.processes:
            stop_group(proc.pid, timeout=3.0)

    def stop_all(self) -> None:
        for uid in list(self.pods):
            self.stop_pod(uid)

    def run(self) -> None:
        self.register_node()
        threading.Thread(target=self.heartbeat, daemon=True).start()
        resource_version = ""
        while True:
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.api.list_pod_for_all_namespaces,
                    resource_version=resource_version,
                    timeout_seconds=300,
                ):
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    try:
                        self.handle(event["type"], pod)
                    except Exception:  # one bad pod must not stop the stand-in for all others
                        log.exception("handling %s failed", pod.metadata.name)
            except ApiException as error:
                if error.status == 410:  # watch window expired: start over from a fresh list
                    resource_version = ""
                else:
                    log.warning("watch failed: %s", error)
                    time.sleep(1)

    def heartbeat(self) -> None:
        while True:
            time.sleep(20)
            with contextlib.suppress(Exception):
                self.register_node()


def _wait_listening(address: str, timeout: float = 10.0) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    log.warning("%s is not listening after %.0fs", address, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pprof-target", required=True, type=Path)
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--subnet", required=True, type=int, help="pod IPs are 127.<subnet>.x.y")
    args = parser.parse_args()
    # SIGTERM must unwind through `finally`, so the pod processes stop with the stand-in.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config.load_kube_config(config_file=args.kubeconfig)
    standin = StandIn(client.CoreV1Api(), args.pprof_target, args.log_dir, args.subnet)
    try:
        standin.run()
    finally:
        standin.stop_all()


if __name__ == "__main__":
    main()
