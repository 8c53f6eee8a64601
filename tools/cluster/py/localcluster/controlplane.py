"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The binaries come from tools/cluster/build.sh (built from Go modules, cached by version). There
is no kubelet: the pod stand-in (standin.py) binds pods to a Node and plays their containers.
The one kubelet endpoint the API server needs, /portForward (for pods/portforward), is served by
kubelet-standin (tools/cluster/kubelet-standin) over TLS on a free loopback port that the Node
advertises; it forwards to the pod processes listed in the pods file the stand-in keeps. So
`kubectl port-forward` and websocket clients of pods/portforward reach the stand-in pods.
`crds` are applied once the API server serves, and start returns when each is Established.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from localcluster import pki
from localcluster.processes import PidFile, free_port, spawn, stop_group
from localcluster.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[4]
BUILD_SCRIPT = REPO_ROOT / "tools" / "cluster" / "build.sh"
DEFAULT_BIN_DIR = REPO_ROOT / ".cluster" / "bin"
SERVICE_CIDR = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says which part and why."""


def build_binaries(*names: str) -> Path:
    """Build (or reuse from the cache) the Go binaries; returns the directory that links them."""
    result = subprocess.run([str(BUILD_SCRIPT), *names], check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return DEFAULT_BIN_DIR


def _crd_names(paths: tuple[Path, ...]) -> Iterator[str]:
    for path in paths:
        for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
            for document in yaml.safe_load_all(file.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    yield document["metadata"]["name"]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass
class ControlPlane:
    """One local cluster, its files in `workdir`; `detached` keeps it alive after this process."""

    workdir: Path
    bin_dir: Path = DEFAULT_BIN_DIR
    detached: bool = False
    api_port: int = 0
    pod_subnet: int = 0
    """Pod IPs are 127.<pod_subnet>.x.y; 0 picks one from the process id, so that two clusters
    on one machine (say `make cluster-up` and a test run) never hand out the same address."""
    crds: tuple[Path, ...] = ()
    """CustomResourceDefinition files (or directories of them) to install on start."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self.stop()
        for sub in ("pki", "logs", "etcd"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet-standin"):
            if not (self.bin_dir / name).exists():
                raise ControlPlaneError(f"{self.bin_dir / name} is missing: run {BUILD_SCRIPT}")
        self._write_pki()
        self._start_etcd()
        self._start_apiserver()
        self._wait_ready(timeout)
        self._start_controller_manager()
        self._start_kubelet_standin(timeout)
        if not self.pod_subnet:
            self.pod_subnet = 10 if self.detached else 20 + os.getpid() % 230
        self._start_standin()
        self.install_crds(self.crds, timeout)
        (self.workdir / "started-seconds").write_text(f"{time.monotonic() - started:.1f}\n")

    def install_crds(self, paths: tuple[Path, ...], timeout: float = 60.0) -> None:
        """`kubectl apply` each file or directory, then wait until every CRD is Established."""
        kubectl = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}"]
        for path in paths:
            applied = subprocess.run(
                [*kubectl, "apply", "-f", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if applied.returncode != 0:
                raise ControlPlaneError(f"kubectl apply -f {path} failed:\n{applied.stderr}")
        for name in _crd_names(paths):
            # `kubectl wait` fails outright while the CRD has no conditions yet, so poll instead.
            wait_for(
                lambda name=name: (
                    "True"
                    in subprocess.run(
                        [
                            *kubectl,
                            "get",
                            f"crd/{name}",
                            "-o",
                            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        check=False,  # jsonpath fails while there are no conditions at all yet
                    ).stdout
                ),
                timeout,
                f"CRD {name} to be established",
            )

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            stop_group(proc.pid)
        self.processes.clear()
        PidFile(self.workdir / "pids.json").stop_all()

    # -- parts -------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        proc = spawn(args, self.log_dir / f"{name}.log", tie_to_parent=not self.detached)
        self.processes[name] = proc
        PidFile(self.workdir / "pids.json").add(name, proc.pid)

    def _write_pki(self) -> None:
        ca = pki.CertificateAuthority(self.pki_dir, "ca")
        self.ca = ca
        self.ca_cert = ca.cert_path
        self.apiserver_pair = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )
        self.admin_pair = ca.issue("admin", "admin", organization="system:masters")
        self.kcm_pair = ca.issue("controller-manager", "system:kube-controller-manager")
        self.standin_pair = ca.issue(
            "stand-in", "spikeprof:pod-stand-in", organization="system:masters"
        )
        self.kubelet_pair = ca.issue(
            "kubelet", "kubelet-standin", server_names=("localhost",), server_ips=("127.0.0.1",)
        )
        self.kubelet_client_pair = ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client"
        )
        front_proxy = pki.CertificateAuthority(self.pki_dir, "front-proxy-ca")
        self.front_proxy_ca = front_proxy.cert_path
        self.front_proxy_pair = front_proxy.issue("front-proxy-client", "front-proxy-client")
        self.sa_private, self.sa_public = pki.write_service_account_keys(self.pki_dir)

    def _start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # test data: durability across power loss buys nothing here
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        self.api_port = free_port()
        p = self.pki_dir
        # Kept, so that restart_apiserver starts it again exactly as it was.
        self.apiserver_args = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses loopback addresses; nothing here dials the
            # kubernetes Service (clients use the kubeconfig), so it has nothing to do.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.api_port}",
            f"--cert-dir={p}",
            f"--tls-cert-file={self.apiserver_pair.cert}",
            f"--tls-private-key-file={self.apiserver_pair.key}",
            f"--client-ca-file={self.ca_cert}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.sa_public}",
            f"--service-account-signing-key-file={self.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Aggregation layer, for APIServices such as metrics.k8s.io. With no kube-proxy a
            # backend is reached through an ExternalName Service (e.g. localhost), which the
            # aggregator resolves by name; EndpointSlices would refuse loopback addresses.
            f"--requestheader-client-ca-file={self.front_proxy_ca}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy_pair.cert}",
            f"--proxy-client-key-file={self.front_proxy_pair.key}",
            # The API server dials the kubelet stand-in for pods/portforward, at the Node's
            # InternalIP (127.0.0.1) and advertised port, and checks its serving certificate.
            f"--kubelet-client-certificate={self.kubelet_client_pair.cert}",
            f"--kubelet-client-key={self.kubelet_client_pair.key}",
            f"--kubelet-certificate-authority={self.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--v=1",
        ]
        self._spawn("kube-apiserver", self.apiserver_args)

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver alone, as a crash does; etcd, the controllers and pods go on."""
        proc = self.processes.pop("kube-apiserver")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_apiserver(self, timeout: float = 120.0) -> float:
        """Start kube-apiserver again (same port, flags and certificates) after kill_apiserver;
        returns time.monotonic() of the first /readyz that answered ok."""
        self._spawn("kube-apiserver", self.apiserver_args)
        # Back in its place of the start order, right after etcd: stop() goes in reverse order,
        # and an API server stopped while its clients still watch it waits out its grace period
        # (10 s of every outage test's teardown) instead of exiting at once.
        restarted = self.processes.pop("kube-apiserver")
        self.processes = {
            "etcd": self.processes.pop("etcd"),
            "kube-apiserver": restarted,
            **self.processes,
        }
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.admin_pair.cert), str(self.admin_pair.key))
        self._wait_serving("kube-apiserver", f"{self.server}/readyz", context, timeout, 0.1)
        return time.monotonic()

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.admin_pair.cert), str(self.admin_pair.key))
        self._wait_serving("kube-apiserver", f"{self.server}/readyz", context, timeout, 0.5)
        self._write_kubeconfig(self.kubeconfig, "admin", self.admin_pair)

    def _wait_serving(
        self, name: str, url: str, context: ssl.SSLContext, timeout: float, interval: float
    ) -> None:
        """Until `url` answers 2xx; fails early, naming its log, if any child process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(verify=context, timeout=5.0) as client:
            while time.monotonic() < deadline:
                for child, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise ControlPlaneError(
                            f"{child} exited with code {proc.returncode} during start-up; "
                            f"see {self.log_dir / (child + '.log')}"
                        )
                try:
                    response = client.get(url)
                    if response.is_success:
                        return
                    last = f"HTTP {response.status_code}: {response.text[-300:]}"
                except httpx.HTTPError as error:
                    last = str(error)
                time.sleep(interval)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s: {last}")

    def _start_controller_manager(self) -> None:
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kubeconfig, "system:kube-controller-manager", self.kcm_pair)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.pki_dir / 'kcm'}",
                f"--service-account-private-key-file={self.sa_private}",
                f"--root-ca-file={self.ca_cert}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                # No kubelet posts node heartbeats, so node lifecycle would evict every pod; the
                # stand-in owns node and pod status instead.
                "--controllers=*,-node-lifecycle-controller,-node-ipam-controller",
                "--v=1",
            ],
        )

    @property
    def pods_file(self) -> Path:
        """Where each stand-in pod really listens: the stand-in writes it, kubelet-standin reads."""
        return self.workdir / "stand-in-pods.json"

    def _start_kubelet_standin(self, timeout: float) -> None:
        self.kubelet_port = free_port()
        self._spawn(
            "kubelet-standin",
            [
                str(self.bin_dir / "kubelet-standin"),
                f"--address=127.0.0.1:{self.kubelet_port}",
                f"--tls-cert-file={self.kubelet_pair.cert}",
                f"--tls-private-key-file={self.kubelet_pair.key}",
                f"--client-ca-file={self.ca_cert}",
                f"--pods-file={self.pods_file}",
            ],
        )
        # Ask as the API server will: its client certificate, checking the serving certificate.
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(
            str(self.kubelet_client_pair.cert), str(self.kubelet_client_pair.key)
        )
        url = f"https://127.0.0.1:{self.kubelet_port}/healthz"
        self._wait_serving("kubelet-standin", url, context, timeout, 0.1)

    def _start_standin(self) -> None:
        kubeconfig = self.workdir / "stand-in.kubeconfig"
        self._write_kubeconfig(kubeconfig, "spikeprof:pod-stand-in", self.standin_pair)
        self._spawn(
            "pod-stand-in",
            [
                sys.executable,
                "-m",
                "localcluster.standin",
                f"--kubeconfig={kubeconfig}",
                f"--pprof-target={self.bin_dir / 'pprof-target'}",
                # Dapr pods need it; a cluster for tests without Dapr runs without it.
                *(
                    [f"--daprd={self.bin_dir / 'daprd'}"]
                    if (self.bin_dir / "daprd").exists()
                    else []
                ),
                f"--log-dir={self.log_dir / 'pods'}",
                f"--subnet={self.pod_subnet}",
                f"--kubelet-port={self.kubelet_port}",
                f"--pods-file={self.pods_file}",
            ],
        )

    def _write_kubeconfig(self, path: Path, user: str, pair: pki.KeyPair) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": _b64(pair.cert),
                        "client-key-data": _b64(pair.key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def start_metrics_backend(self, timeout: float = 60.0) -> None:
        """Serve metrics.k8s.io through the aggregation layer (metrics_backend.py)."""
        from kubernetes import client, config  # type: ignore[import-untyped]

        pair = self.ca.issue(
            "metrics-backend",
            "metrics-backend",
            # The aggregator checks the name of the Service it was told to dial.
            server_names=("localhost", "metrics-server.kube-system.svc"),
            server_ips=("127.0.0.1",),
        )
        port_file = self.workdir / "metrics-backend.port"
        port_file.unlink(missing_ok=True)
        self._spawn(
            "metrics-backend",
            [
                sys.executable,
                "-m",
                "localcluster.metrics_backend",
                f"--kubeconfig={self.kubeconfig}",
                f"--cert={pair.cert}",
                f"--key={pair.key}",
                f"--port-file={port_file}",
            ],
        )
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if time.monotonic() > deadline:
                raise ControlPlaneError("the metrics backend did not start; see its log")
            time.sleep(0.1)
        port = int(port_file.read_text())
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        with api:
            client.CoreV1Api(api).create_namespaced_service(
                "kube-system",
                {
                    "metadata": {"name": "metrics-server"},
                    "spec": {"type": "ExternalName", "externalName": "localhost"},
                },
            )
            client.ApiregistrationV1Api(api).create_api_service(
                {
                    "metadata": {"name": "v1beta1.metrics.k8s.io"},
                    "spec": {
                        "group": "metrics.k8s.io",
                        "version": "v1beta1",
                        "groupPriorityMinimum": 100,
                        "versionPriority": 100,
                        "caBundle": _b64(self.ca_cert),
                        "service": {
                            "namespace": "kube-system",
                            "name": "metrics-server",
                            "port": port,
                        },
                    },
                }
            )
            registration = client.ApiregistrationV1Api(api)
            while time.monotonic() < deadline:
                service = registration.read_api_service("v1beta1.metrics.k8s.io")
                conditions = {c.type: c for c in service.status.conditions or ()}
                available = conditions.get("Available")
                if available is not None and available.status == "True":
                    return
                time.sleep(0.5)
        message = available.message if available is not None else "no condition yet"
        raise ControlPlaneError(f"APIService v1beta1.metrics.k8s.io is not Available: {message}")

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path, expiration_seconds: int = 86400
    ) -> Path:
        """A kubeconfig that acts as the ServiceAccount, with a token from the TokenRequest API."""
        from kubernetes import client, config  # type: ignore[import-untyped]

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        with api:
            token = client.CoreV1Api(api).create_namespaced_service_account_token(
                name,
                namespace,
                {"spec": {"expirationSeconds": expiration_seconds}},
            )
        return self.token_kubeconfig(
            path, token.status.token, f"system:serviceaccount:{namespace}:{name}"
        )

    def service_account_with_rules(
        self, namespace: str, name: str, rules: list[dict[str, Any]], path: Path
    ) -> Path:
        """A ServiceAccount bound to a Role `name` with `rules`; returns its kubeconfig."""
        from kubernetes import client, config  # type: ignore[import-untyped]

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        with api:
            client.CoreV1Api(api).create_namespaced_service_account(
                namespace, {"metadata": {"name": name}}
            )
            rbac = client.RbacAuthorizationV1Api(api)
            rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
                },
            )
        return self.service_account_kubeconfig(namespace, name, path)

    def token_kubeconfig(self, path: Path, token: str, user: str) -> Path:
        """A kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": user, "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = user
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path
