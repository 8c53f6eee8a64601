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

Containers: each container is one process, watched as the kubelet and the kernel watch it
(containers.py): past its `resources.limits.memory` it is SIGKILLed and reported OOMKilled/137,
any other exit as Error (or Completed) with its code, and per the pod's restartPolicy it is
started again on the same addresses, alone, with restartCount + 1 and the crash-loop back-off.

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
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from localcluster import containers, dapr_sidecar
from localcluster.processes import stop_group

NODE_NAME = "stand-in-node"
ARGS_ANNOTATION = "stand-in.spikeprof.io/args"
UNROUTABLE_ANNOTATION = "stand-in.spikeprof.io/unroutable"
PODS_FILE_BATCH_SECONDS = 0.2  # how late the entry of a pod with no listener may be written
# Threads writing pods' first status. A kubelet writes statuses from its status manager, apart
# from the loop that starts pods; one write per pod on the watch's thread, each waiting for
# the API server, made starting 30,000 pods take most of an hour.
STATUS_WRITERS = 8

log = logging.getLogger("pod-stand-in")


@dataclass
class RunningPod:
    key: str
    """namespace/name, the pod's key in the pods file."""
    address: str
    """Where the processes listen; the reported podIP differs for an unroutable pod."""
    loopback: str
    """The pod's own 127.0.0.1: where a process bound to the pod's loopback listens."""
    name: str
    namespace: str
    restart_policy: str
    containers: list[containers.Container]
    silent_sockets: list[socket.socket] = field(default_factory=list)
    """For an unroutable pod: what keeps its reported IP from answering."""
    stopping: bool = False
    """Set (under the stand-in's lock) once the pod is deleted: nothing of it restarts again."""
    status_lock: threading.Lock = field(default_factory=threading.Lock)
    """Orders the status patches of one pod: each carries all its containers."""
    transitions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    """Condition type -> (status, lastTransitionTime), so a time changes only with the status."""

    def condition(
        self, kind: str, status: bool, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != status:
            previous = self.transitions[kind] = (status, _now())
        # The patch merges conditions by type: a null removes a reason the status no longer has.
        return {
            "type": kind,
            "status": "True" if status else "False",
            "lastTransitionTime": previous[1],
            "reason": reason or None,
            "message": message or None,
        }

    def status(self) -> dict[str, Any]:
        """phase, conditions and containerStatuses, as the kubelet's generateAPIPodStatus."""
        unready = [c.name for c in self.containers if not c.ready]
        # status/generate.go GenerateContainersReadyCondition; Ready copies its reason.
        reason = "ContainersNotReady" if unready else ""
        message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
        conditions = [
            self.condition("PodScheduled", True),
            self.condition("Initialized", True),
            self.condition("ContainersReady", not unready, reason, message),
            self.condition("Ready", not unready, reason, message),
        ]
        return {
            "phase": self.phase(),
            "conditions": conditions,
            "containerStatuses": [c.status() for c in self.containers],
        }

    def phase(self) -> str:
        # kubelet_pods.go getPhase: Running while a container runs or will be restarted.
        ended = [c.terminated for c in self.containers if c.terminated is not None]
        if len(ended) < len(self.containers) or self.restart_policy == "Always":
            return "Running"
        if self.restart_policy == "OnFailure" and any(t.exit_code != 0 for t in ended):
            return "Running"
        return "Failed" if any(t.exit_code != 0 for t in ended) else "Succeeded"


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

    container: str
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
        # Guards pods, each pod's containers and the pods file: the watch, the container
        # watcher and the restarts run on threads of their own.
        self.lock = threading.RLock()
        self.pods_file_stale = threading.Event()  # pods started that the file does not show
        # Restarts start processes on this one lasting thread: a child dies with the thread
        # that spawned it (PR_SET_PDEATHSIG, processes.spawn), and _after_exit's threads end.
        self.spawner = ThreadPoolExecutor(1, thread_name_prefix="container-start")
        self.status_writers = ThreadPoolExecutor(STATUS_WRITERS, thread_name_prefix="pod-status")

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
                planned.append(PlannedProcess(container.name, command, [listen], [ports[0]]))
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
        return PlannedProcess("daprd", plan.command, plan.listens_on, plan.pod_address_ports)

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
            # Compact: json's C encoder (indent= falls back to the pure-Python one), since the
            # file is rewritten for every pod started: at 10,000 pods that was most of the
            # stand-in's time.
            temporary.write_text(json.dumps(entries, separators=(",", ":")))
            os.replace(temporary, self.pods_file)

    def write_stale_pods_file(self) -> None:
        """Write the pods file for pods started without a listener, a batch at a time."""
        while True:
            self.pods_file_stale.wait()
            time.sleep(PODS_FILE_BATCH_SECONDS)
            self.pods_file_stale.clear()
            self.write_pods_file()

    def start_pod(self, pod: Any) -> None:
        meta = pod.metadata
        address = self.allocate_ip()
        loopback = self.allocate_ip()
        unroutable = (meta.annotations or {}).get(UNROUTABLE_ANNOTATION, "").lower() == "true"
        # An unroutable pod reports an address of its own that never answers (_silent_listener).
        ip = self.allocate_ip() if unroutable else address
        planned = {p.container: p for p in self.plan_processes(pod, address, loopback)}
        pod_containers = []
        for index, spec in enumerate(pod.spec.containers):
            process = planned.get(spec.name)
            pod_containers.append(
                containers.Container(
                    pod_uid=meta.uid,
                    name=spec.name,
                    image=spec.image or "pprof-target",
                    command=process.command if process else None,
                    listens_on=process.listens_on if process else [],
                    log_path=self.log_dir / f"{meta.namespace}_{meta.name}_{index}.log",
                    memory_limit=containers.memory_limit_bytes(spec),
                )
            )
        running = RunningPod(
            f"{meta.namespace}/{meta.name}",
            address,
            loopback,
            meta.name,
            meta.namespace,
            pod.spec.restart_policy or "Always",
            pod_containers,
        )
        if unroutable:
            for port in sorted(
                {p for process in planned.values() for p in process.pod_address_ports}
            ):
                running.silent_sockets += _silent_listener(ip, port)
        with self.lock:
            for container in pod_containers:
                container.start()
            self.pods[meta.uid] = running
        for container in pod_containers:
            for listen in container.listens_on:
                _wait_listening(listen)
        if any(c.listens_on for c in pod_containers) or running.silent_sockets:
            self.write_pods_file()
        else:
            # Nothing listens in this pod, so a port-forward to it fails whether or not it is
            # in the file yet: its entry is written with the next batch, a moment later. (At
            # 10,000 such pods, one rewrite of the whole file per pod was most of the
            # stand-in's time, growing with the square of the pods.)
            self.pods_file_stale.set()
        # Written on a thread of its own: the watch goes on to the next pod meanwhile. A later
        # write of the pod's status (a container exited) waits for this one (status_lock).
        self.status_writers.submit(self.report_started, running, ip, _now())

    def report_started(self, running: RunningPod, ip: str, started: str) -> None:
        """The pod's first status: its addresses, start time, phase and containers."""
        with running.status_lock:
            with self.lock:
                if running.stopping:
                    return  # deleted before its status was written: nothing to report
                status = running.status()
            try:
                _drain(
                    self.api.patch_namespaced_pod_status(
                        running.name,
                        running.namespace,
                        {
                            "status": {
                                "hostIP": "127.0.0.1",
                                "hostIPs": [{"ip": "127.0.0.1"}],
                                "podIP": ip,
                                "podIPs": [{"ip": ip}],
                                "startTime": started,
                                **status,
                            }
                        },
                        # The reply (the whole pod) is not decoded: the watch brings it.
                        _preload_content=False,
                    )
                )
                log.info("pod %s running at %s (listening on %s)", running.key, ip, running.address)
            except ApiException as error:
                log.warning("status of %s not set: %s", running.key, error)
            # Neither may end the thread pool's worker quietly: say what failed.
            except Exception:
                log.exception("status of %s not set", running.key)

    def patch_status(self, running: RunningPod) -> None:
        """Write the pod's containers as they are now; a deleted pod is not written."""
        with running.status_lock:
            with self.lock:
                if running.stopping:
                    return
                status = running.status()
            try:
                _drain(
                    self.api.patch_namespaced_pod_status(
                        running.name, running.namespace, {"status": status}, _preload_content=False
                    )
                )
            except ApiException as error:
                log.warning("status of %s not set: %s", running.key, error)

    # -- containers ------------------------------------------------------------------------

    def watch_containers(self) -> None:
        """Every POLL_SECONDS: kill a container past its memory limit, notice any exit."""
        while True:
            time.sleep(containers.POLL_SECONDS)
            with self.lock:
                watched = [
                    (running, container)
                    for running in self.pods.values()
                    if not running.stopping
                    for container in running.containers
                    if container.process is not None
                ]
            for running, container in watched:
                try:
                    self._check(running, container)
                except Exception:  # one container's trouble must not stop the watch of all
                    log.exception("watching %s/%s failed", running.key, container.name)

    def _check(self, running: RunningPod, container: containers.Container) -> None:
        process = container.process
        if process is None:
            return
        oom_killed = False
        returncode = process.poll()
        if returncode is None:
            rss = container.over_limit()
            if rss is None:
                return
            with self.lock:
                if running.stopping or container.process is not process:
                    return
                log.info(
                    "%s/%s uses %d MiB, over its limit of %d MiB: killed as the OOM killer would",
                    running.key,
                    container.name,
                    rss >> 20,
                    (container.memory_limit or 0) >> 20,
                )
                returncode = container.kill_for_memory()
            oom_killed = True
        with self.lock:
            if running.stopping or container.process is not process:
                return  # stop_pod ended it: a deletion, not an exit
            ended = container.exited(returncode, oom_killed)
        log.info(
            "%s/%s exited: %s, exit code %d",
            running.key,
            container.name,
            ended.reason,
            ended.exit_code,
        )
        threading.Thread(target=self._after_exit, args=(running, container), daemon=True).start()

    def _after_exit(self, running: RunningPod, container: containers.Container) -> None:
        """What the kubelet's next syncs do: report the exit, then restart per policy."""
        self.patch_status(running)  # state.terminated, not ready
        ended = container.terminated
        assert ended is not None
        if running.restart_policy == "Never" or (
            running.restart_policy == "OnFailure" and ended.exit_code == 0
        ):
            return
        delay = container.backoff.remaining(container.finished_monotonic, time.monotonic())
        if delay > 0:
            with self.lock:
                container.wait_in_backoff(running.name, running.namespace, delay)
            self.patch_status(running)
            time.sleep(delay)
        with self.lock:
            if running.stopping:
                return
            container.backoff.next(container.finished_monotonic, time.monotonic())
            self.spawner.submit(container.start).result()
        for listen in container.listens_on:
            _wait_listening(listen)
        log.info(
            "%s/%s restarted (restartCount %d)",
            running.key,
            container.name,
            container.restart_count,
        )
        self.patch_status(running)

    def stop_pod(self, uid: str) -> None:
        with self.lock:
            running = self.pods.pop(uid, None)
            if running is None:
                return
            running.stopping = True
            processes = [c.process for c in running.containers if c.process is not None]
        self.write_pods_file()  # before the processes go: no new port-forward to a dying pod
        for proc in processes:
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
        threading.Thread(target=self.watch_containers, daemon=True).start()
        threading.Thread(target=self.write_stale_pods_file, daemon=True).start()
        resource_version = ""
        while True:
            try:
                for kind, raw in self.pod_events(resource_version):
                    meta = raw["metadata"]
                    resource_version = meta["resourceVersion"]
                    try:
                        self.handle_raw(kind, raw)
                    except Exception:  # one bad pod must not stop the stand-in for all others
                        log.exception("handling %s failed", meta.get("name"))
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

    def pod_events(self, resource_version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, pod JSON) of each event of one watch of all pods (a list first when
        `resource_version` is empty: the current pods come as ADDED). The client's
        watch.Watch turns every event into a V1Pod (JSON parsed, printed and parsed again):
        at 30,000 pods, each seen twice (created, then its status written), that alone was
        minutes; here a pod is turned into a V1Pod only when handle() needs one."""
        reply = self.api.list_pod_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            timeout_seconds=300,
            _preload_content=False,
        )
        try:
            for line in watch.watch.iter_resp_lines(reply):
                if not line:
                    continue
                event = json.loads(line)
                kind, raw = event["type"], event["object"]
                if kind == "ERROR":  # e.g. 410 Gone: the version is too old; run() lists again
                    raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    yield kind, raw
        finally:
            reply.close()
            reply.release_conn()

    def handle_raw(self, kind: str, raw: dict[str, Any]) -> None:
        """handle() for one event's pod JSON, skipping what handle() would do nothing with
        without making a V1Pod of it: a pod already running here, not being deleted (most
        events are those: the pod's own status writes)."""
        meta = raw["metadata"]
        if kind == "DELETED":
            self.stop_pod(meta["uid"])
            return
        if meta["uid"] in self.pods and meta.get("deletionTimestamp") is None:
            return
        pod = self.api.api_client.deserialize(json.dumps(raw), "V1Pod", "application/json")
        self.handle(kind, pod)

    def heartbeat(self) -> None:
        while True:
            time.sleep(20)
            with contextlib.suppress(Exception):
                self.register_node()


def _drain(reply: Any) -> None:
    """Read a raw reply (_preload_content=False) to its end: its connection goes back to the
    pool for the next request."""
    reply.read()
    reply.release_conn()


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
