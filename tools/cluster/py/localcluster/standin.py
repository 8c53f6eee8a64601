"""The pod stand-in: a tiny kubelet substitute for the local control plane.

It registers a Node, binds unscheduled pods to it, and for each pod starts a real pprof-target
process on a loopback address of its own (127.0.x.y), then reports the pod Running and Ready with
that address as its podIP. Deleting the pod stops the process.

Port-forward: the Node advertises the port of kubelet-standin (--kubelet-port), which serves the
kubelet's /portForward for the API server; it finds where each pod really listens in --pods-file,
a JSON map "namespace/name" -> {"uid", "address"} that the stand-in rewrites atomically as pods
start and stop. Pod annotations shape the process:

  stand-in.spikeprof.io/args      extra pprof-target flags, space separated (e.g. "-burn=1")
  stand-in.spikeprof.io/unroutable: "true"
      the processes listen on an address of their own as usual, but the podIP reported is another
      loopback address that never answers on the pod's ports (connections time out, as to a pod
      network the caller has no route to): only port-forward through the API server
      (pods/portforward) reaches the pod, as from outside a real cluster.
  dapr.io/enabled: "true": the container named daprd runs the real daprd (tools/cluster/daprd),
      with the flags Dapr's injector gives it (see daprd_command).

Pod network: pods share the machine's network namespace, so each pod gets two loopback addresses
of its own, standing in for its network namespace: its address (reported as podIP, where a
process that a real pod would run on 0.0.0.0 listens), and its loopback (what 127.0.0.1 is inside
a real pod: never reported, never dialed by anyone but the pod's own processes and the kubelet's
port-forward). kubelet-standin's port-forward dials the loopback first, then the pod address, as
containerd does (internal/cri/server/sandbox_portforward_linux.go: dialLocalhost inside the pod's
netns, then dialPodIPs).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from localcluster import dapr_sidecar
from localcluster.processes import spawn, stop_group

NODE_NAME = "stand-in-node"
ARGS_ANNOTATION = "stand-in.spikeprof.io/args"
UNROUTABLE_ANNOTATION = "stand-in.spikeprof.io/unroutable"

log = logging.getLogger("pod-stand-in")


@dataclass
class RunningPod:
    key: str
    """namespace/name, the pod's key in the pods file."""
    address: str
    """Where the processes listen; the reported podIP differs for an unroutable pod."""
    loopback: str
    """The pod's own 127.0.0.1: where a process bound to the pod's loopback listens."""
    processes: list[subprocess.Popen[bytes]]
    silent_sockets: list[socket.socket] = field(default_factory=list)
    """For an unroutable pod: what keeps its reported IP from answering."""


def _silent_listener(ip: str, port: int) -> list[socket.socket]:
    """Make ip:port swallow connection attempts: they time out instead of being refused.

    A refusal would tell a caller that the address is routable. A listener that never accepts,
    with a backlog of 0 filled by one connection of our own, makes the kernel drop every
    further SYN, which is what a caller without a route to the pod network sees.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((ip, port))
    listener.listen(0)
    filler = socket.create_connection((ip, port), timeout=2)
    return [listener, filler]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PlannedProcess:
    """One container's process: its command, where it listens, and which of those ports are
    on the pod's address (an unroutable pod keeps its reported IP silent on them)."""

    command: list[str]
    listens_on: list[str]
    pod_address_ports: list[int]


class StandIn:
    def __init__(
        self,
        api: Any,
        pprof_target: Path,
        log_dir: Path,
        subnet: int,
        kubelet_port: int,
        pods_file: Path,
        daprd: Path | None = None,
    ) -> None:
        self.api = api
        self.pprof_target = pprof_target
        self.daprd = daprd  # runs the daprd container of Dapr pods; None: such pods fail
        self.log_dir = log_dir
        self.kubelet_port = kubelet_port
        self.pods_file = pods_file
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
                    # Where the API server dials this node's kubelet (kubelet-standin).
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
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

    def plan_processes(self, pod: Any, address: str, loopback: str) -> list[PlannedProcess]:
        annotations = pod.metadata.annotations or {}
        extra = shlex.split(annotations.get(ARGS_ANNOTATION, ""))
        planned: list[PlannedProcess] = []
        for container in pod.spec.containers:
            ports = [p.container_port for p in (container.ports or [])]
            if container.name == "daprd" and dapr_sidecar.is_dapr_pod(annotations):
                planned.append(self._plan_daprd(pod, address, loopback))
            elif ports:
                listen = f"{address}:{ports[0]}"
                command = [str(self.pprof_target), f"-listen={listen}", *extra]
                planned.append(PlannedProcess(command, [listen], [ports[0]]))
        return planned

    def _plan_daprd(self, pod: Any, address: str, loopback: str) -> PlannedProcess:
        if self.daprd is None:
            raise RuntimeError(
                f"pod {pod.metadata.name} needs daprd: build it with "
                "tools/cluster/build.sh daprd and start the cluster again"
            )
        resources = self.log_dir / "dapr-resources"  # no components: an empty directory
        resources.mkdir(parents=True, exist_ok=True)
        configuration = self.log_dir / "dapr-configuration.yaml"
        configuration.write_text(dapr_sidecar.CONFIGURATION)
        plan = dapr_sidecar.daprd_plan(
            self.daprd,
            pod.metadata.name,
            pod.metadata.annotations or {},
            address,
            loopback,
            resources,
            configuration,
        )
        return PlannedProcess(plan.command, plan.listens_on, plan.pod_address_ports)

    def write_pods_file(self) -> None:
        """Where each pod listens, for kubelet-standin; replaced whole so it never reads half."""
        with self.lock:
            entries = {
                running.key: {
                    "uid": uid,
                    "address": running.address,
                    "loopback": running.loopback,
                }
                for uid, running in self.pods.items()
            }
            temporary = self.pods_file.with_name(self.pods_file.name + ".tmp")
            temporary.write_text(json.dumps(entries, indent=1, sort_keys=True))
            os.replace(temporary, self.pods_file)

    def start_pod(self, pod: Any) -> None:
        meta = pod.metadata
        address = self.allocate_ip()
        loopback = self.allocate_ip()
        unroutable = (meta.annotations or {}).get(UNROUTABLE_ANNOTATION, "").lower() == "true"
        # An unroutable pod reports an address of its own that never answers (_silent_listener).
        ip = self.allocate_ip() if unroutable else address
        planned = self.plan_processes(pod, address, loopback)
        procs = []
        for index, process in enumerate(planned):
            log_path = self.log_dir / f"{meta.namespace}_{meta.name}_{index}.log"
            procs.append(spawn(process.command, log_path))
        running = RunningPod(f"{meta.namespace}/{meta.name}", address, loopback, procs)
        if unroutable:
            for port in sorted({p for process in planned for p in process.pod_address_ports}):
                running.silent_sockets += _silent_listener(ip, port)
        self.pods[meta.uid] = running
        for process in planned:
            for listen in process.listens_on:
                _wait_listening(listen)
        self.write_pods_file()
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
            log.info(
                "pod %s/%s running at %s (listening on %s)", meta.namespace, meta.name, ip, address
            )
        except ApiException as error:
            log.warning("status of %s/%s not set: %s", meta.namespace, meta.name, error)

    def stop_pod(self, uid: str) -> None:
        running = self.pods.pop(uid, None)
        if running is None:
            return
        self.write_pods_file()  # before the processes go: no new port-forward to a dying pod
        for proc in running.processes:
            stop_group(proc.pid, timeout=3.0)
        for sock in running.silent_sockets:
            sock.close()

    def stop_all(self) -> None:
        for uid in list(self.pods):
            self.stop_pod(uid)

    def run(self) -> None:
        self.write_pods_file()  # none running yet: forget the pods of an earlier run
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
            # The API server is away (a test restarts it): a kubelet keeps its pods running
            # and watches again; so does the stand-in, from the last version it saw.
            except urllib3.exceptions.HTTPError as error:
                log.warning("the API server is unreachable: %s", error)
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
    parser.add_argument("--daprd", type=Path, help="Dapr's sidecar, for dapr.io/enabled pods")
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--subnet", required=True, type=int, help="pod IPs are 127.<subnet>.x.y")
    parser.add_argument(
        "--kubelet-port", required=True, type=int, help="kubelet-standin's port, for the Node"
    )
    parser.add_argument(
        "--pods-file", required=True, type=Path, help="where pods listen, for kubelet-standin"
    )
    args = parser.parse_args()
    # SIGTERM must unwind through `finally`, so the pod processes stop with the stand-in.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config.load_kube_config(config_file=args.kubeconfig)
    standin = StandIn(
        client.CoreV1Api(),
        args.pprof_target,
        args.log_dir,
        args.subnet,
        args.kubelet_port,
        args.pods_file,
        args.daprd,
    )
    try:
        standin.run()
    finally:
        standin.stop_all()


if __name__ == "__main__":
    main()
