"""The daprd command line Dapr's sidecar injector would give a pod, for the stand-in to run.

Dapr's injector is a mutating webhook that needs Dapr's control plane (Sentry for its serving
certificate and the sidecars' identities), so the local cluster does not run it. It copies what
the injector decides instead, from dapr/dapr v1.16.5 (the version tools/cluster/daprd builds):

- pkg/injector/patcher/sidecar.go, SidecarConfig: the annotations read and their defaults
  (dapr.io/enable-profiling false, dapr.io/sidecar-listen-addresses "[::1],127.0.0.1",
  dapr.io/metrics-port 9090, dapr.io/enable-metrics true, dapr.io/app-id the pod's name,
  HTTP 3500, gRPC 50001, internal gRPC 50002, public 3501).
- pkg/injector/patcher/sidecar_container.go, getSidecarContainer: the flags (--dapr-listen-addresses
  from the annotation, --enable-profiling only when the annotation is true, --metrics-port with
  --enable-metrics; no --profile-port, so daprd's default 7777 from pkg/runtime/config.go).
- daprd binds its profiling server to each of the listen addresses and nothing else
  (pkg/api/http/server.go, StartNonBlocking); its metrics server listens on
  --metrics-listen-address, default 0.0.0.0 (pkg/metrics/options.go).

Where the stand-in must differ, because its pods share one network namespace:
- Addresses are translated: 127.0.0.1/localhost become the pod's own loopback address, 0.0.0.0
  and [::] the pod's address plus its loopback (all of the pod's addresses), and daprd's servers
  that default to all addresses (metrics, public, internal gRPC) are pinned to the pod's address.
  [::1] is dropped: there is one IPv6 loopback on the machine, not one per pod.
- --mode standalone instead of kubernetes (no Dapr operator, Sentry or placement here), with an
  empty --resources-path, and --app-channel-address set to the pod's address, where the app
  container listens (in a real pod daprd reaches the app on 127.0.0.1).
- --config names a Configuration with Kubernetes name resolution, what daprd uses in Kubernetes
  mode: standalone mode's default, mDNS, would announce every pod on the machine's network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENABLED = "dapr.io/enabled"
ENABLE_PROFILING = "dapr.io/enable-profiling"
LISTEN_ADDRESSES = "dapr.io/sidecar-listen-addresses"
DEFAULT_LISTEN_ADDRESSES = "[::1],127.0.0.1"
PROFILE_PORT = 7777
HTTP_PORT = 3500
GRPC_PORT = 50001
INTERNAL_GRPC_PORT = 50002
PUBLIC_PORT = 3501
DEFAULT_METRICS_PORT = 9090

_LOOPBACKS = ("127.0.0.1", "localhost")
_ALL_ADDRESSES = ("0.0.0.0", "[::]", "::")
_IPV6_LOOPBACK = ("[::1]", "::1")


CONFIGURATION = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: stand-in
spec:
  nameResolution:
    component: kubernetes
"""


def _true(value: str | None) -> bool:
    # The injector reads annotation booleans with dapr/kit strings.IsTruthy (sidecar.go).
    return (value or "").strip().lower() in ("y", "yes", "true", "t", "on", "1")


@dataclass(frozen=True)
class DaprdPlan:
    command: list[str]
    listens_on: list[str]
    """host:port of each server this daprd opens, to wait for."""
    pod_address_ports: list[int]
    """Ports daprd serves on the pod's address (an unroutable pod keeps them silent)."""


def is_dapr_pod(annotations: dict[str, str]) -> bool:
    return _true(annotations.get(ENABLED))


def translate_listen_addresses(value: str, address: str, loopback: str) -> list[str]:
    """The injector's listen addresses, as addresses of this pod in the shared namespace."""
    translated: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item or item in _IPV6_LOOPBACK:
            continue
        if item in _LOOPBACKS:
            candidates = [loopback]
        elif item in _ALL_ADDRESSES:
            candidates = [address, loopback]
        else:
            candidates = [address]  # the pod IP itself, or an address only the pod would have
        translated += [c for c in candidates if c not in translated]
    return translated


def daprd_plan(
    daprd: Path,
    pod_name: str,
    annotations: dict[str, str],
    address: str,
    loopback: str,
    resources_path: Path,
    config_path: Path,
) -> DaprdPlan:
    listen = translate_listen_addresses(
        annotations.get(LISTEN_ADDRESSES) or DEFAULT_LISTEN_ADDRESSES, address, loopback
    )
    if not listen:
        listen = [loopback]  # only [::1] asked for: the pod's loopback is the nearest we have
    app_id = annotations.get("dapr.io/app-id") or pod_name
    command = [
        str(daprd),
        "--mode",
        "standalone",
        "--app-id",
        app_id,
        "--dapr-http-port",
        str(HTTP_PORT),
        "--dapr-grpc-port",
        str(GRPC_PORT),
        "--dapr-internal-grpc-port",
        str(INTERNAL_GRPC_PORT),
        "--dapr-internal-grpc-listen-address",
        address,
        "--dapr-listen-addresses",
        ",".join(listen),
        "--dapr-public-port",
        str(PUBLIC_PORT),
        "--dapr-public-listen-address",
        address,
        "--resources-path",
        str(resources_path),
        "--config",
        str(config_path),
        "--log-level",
        annotations.get("dapr.io/log-level") or "info",
    ]
    app_port = annotations.get("dapr.io/app-port")
    if app_port:
        command += ["--app-port", app_port, "--app-channel-address", address]
    listens_on = [f"{listen[0]}:{HTTP_PORT}"]
    pod_address_ports = [PUBLIC_PORT, INTERNAL_GRPC_PORT]
    if annotations.get("dapr.io/enable-metrics") is None or _true(
        annotations.get("dapr.io/enable-metrics")
    ):
        metrics_port = int(annotations.get("dapr.io/metrics-port") or DEFAULT_METRICS_PORT)
        command += [
            "--enable-metrics",
            "--metrics-port",
            str(metrics_port),
            "--metrics-listen-address",
            address,
        ]
        listens_on.append(f"{address}:{metrics_port}")
        pod_address_ports.append(metrics_port)
    if _true(annotations.get(ENABLE_PROFILING)):
        command.append("--enable-profiling")
        listens_on.append(f"{listen[0]}:{PROFILE_PORT}")
    if address in listen:
        pod_address_ports += [HTTP_PORT, GRPC_PORT]
        if _true(annotations.get(ENABLE_PROFILING)):
            pod_address_ports.append(PROFILE_PORT)
    return DaprdPlan(command, listens_on, sorted(set(pod_address_ports)))
