"""pods/portforward through the real API server reaches the stand-in pods (kubelet-standin).

kubectl port-forward (websocket tunnel, translated to SPDY by the API server) and a plain
v4.channel.k8s.io websocket client (proxied to the kubelet as is) both reach the pod's process,
also for a pod whose podIP nothing listens on (stand-in.spikeprof.io/unroutable).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websocket
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e

PPROF_PORT = 7777
UNROUTABLE = "stand-in.spikeprof.io/unroutable"
PPROF_INDEX = b"Types of profiles available"
HTTP_GET = b"GET /debug/pprof/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _create_pod(
    api: client.ApiClient,
    namespace: str,
    name: str,
    wait_for: Callable[..., Any],
    annotations: dict[str, str] | None = None,
) -> Any:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "pprof-target",
                        "ports": [{"containerPort": PPROF_PORT}],
                    }
                ]
            },
        },
    )

    def running() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" and pod.status.pod_ip else None

    return wait_for(running, 60, f"pod {name} to run")


@dataclass
class Credentials:
    """How a websocket client authenticates: the cluster CA, and a client cert or a token."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None


def _admin_credentials(kubeconfig: Path, directory: Path) -> Credentials:
    config = yaml.safe_load(kubeconfig.read_text())
    files = {
        "ca.crt": config["clusters"][0]["cluster"]["certificate-authority-data"],
        "admin.crt": config["users"][0]["user"]["client-certificate-data"],
        "admin.key": config["users"][0]["user"]["client-key-data"],
    }
    for name, data in files.items():
        (directory / name).write_bytes(base64.b64decode(data))
    return Credentials(directory / "ca.crt", directory / "admin.crt", directory / "admin.key")


@dataclass
class Forwarded:
    """What a v4.channel.k8s.io port-forward delivered, per channel (0 data, 1 error)."""

    port_headers: dict[int, bytes] = field(default_factory=dict)
    data: bytes = b""
    error: bytes = b""


def _forward_over_websocket(
    cluster: ControlPlane,
    credentials: Credentials,
    namespace: str,
    pod: str,
    port: int,
    send: bytes | None,
) -> Forwarded:
    """One port over pods/portforward as the operator does it: websocket, v4.channel.k8s.io."""
    url = (
        f"wss://127.0.0.1:{cluster.api_port}/api/v1/namespaces/{namespace}/pods/{pod}"
        f"/portforward?ports={port}"
    )
    sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(credentials.ca)}
    if credentials.cert is not None:
        sslopt.update(certfile=str(credentials.cert), keyfile=str(credentials.key))
    headers = [f"Authorization: Bearer {credentials.token}"] if credentials.token else []
    ws = websocket.create_connection(
        url, subprotocols=["v4.channel.k8s.io"], sslopt=sslopt, header=headers, timeout=15
    )
    result = Forwarded()
    try:
        assert ws.subprotocol == "v4.channel.k8s.io"
        sent = False
        while True:
            try:
                opcode, message = ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            channel, payload = message[0], message[1:]
            if channel not in result.port_headers:
                # Each channel opens with the port it serves, as 2 little-endian bytes.
                result.port_headers[channel] = payload
            elif channel == 0:
                result.data += payload
            else:
                result.error += payload
            if send is not None and not sent and 0 in result.port_headers:
                ws.send_binary(b"\x00" + send)
                sent = True
    finally:
        ws.close()
    return result


def test_kubectl_port_forward_reaches_the_pods_pprof(
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    kubectl_port_forward: Callable[[str, str, int], int],
) -> None:
    _create_pod(api, namespace, "web", wait_for)
    local = kubectl_port_forward(namespace, "web", PPROF_PORT)
    # Twice: each local connection is a new stream pair over the same tunnel.
    for _ in range(2):
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/debug/pprof/", timeout=10) as reply:
            assert reply.status == 200
            assert PPROF_INDEX in reply.read()


def test_websocket_port_forward_through_the_api_server(
    cluster: ControlPlane,
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    _create_pod(api, namespace, "web", wait_for)
    credentials = _admin_credentials(cluster.kubeconfig, tmp_path)
    forwarded = _forward_over_websocket(
        cluster, credentials, namespace, "web", PPROF_PORT, HTTP_GET
    )
    port = PPROF_PORT.to_bytes(2, "little")
    assert forwarded.port_headers == {0: port, 1: port}
    assert forwarded.error == b""
    assert forwarded.data.startswith(b"HTTP/1.1 200 OK\r\n"), forwarded.data[:200]
    assert PPROF_INDEX in forwarded.data


def test_unroutable_pod_is_reached_only_by_port_forward(
    cluster: ControlPlane,
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    tmp_path: Path,
    kubectl_port_forward: Callable[[str, str, int], int],
) -> None:
    pod = _create_pod(api, namespace, "hidden", wait_for, {UNROUTABLE: "true"})
    pod_ip = pod.status.pod_ip
    listening = json.loads(cluster.pods_file.read_text())[f"{namespace}/hidden"]
    assert listening["uid"] == pod.metadata.uid
    assert pod_ip.startswith("127.") and listening["address"] != pod_ip

    # The reported IP does not answer at all (no refusal either), as without a route to it.
    with pytest.raises(TimeoutError):
        socket.create_connection((pod_ip, PPROF_PORT), timeout=2).close()

    credentials = _admin_credentials(cluster.kubeconfig, tmp_path)
    forwarded = _forward_over_websocket(
        cluster, credentials, namespace, "hidden", PPROF_PORT, HTTP_GET
    )
    assert forwarded.data.startswith(b"HTTP/1.1 200 OK\r\n"), forwarded.data[:200]
    local = kubectl_port_forward(namespace, "hidden", PPROF_PORT)
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/debug/pprof/", timeout=10) as reply:
        assert PPROF_INDEX in reply.read()

    # Deleting the pod takes it out of the pods file: no more forwarding to it.
    client.CoreV1Api(api).delete_namespaced_pod("hidden", namespace)
    wait_for(
        lambda: f"{namespace}/hidden" not in json.loads(cluster.pods_file.read_text()),
        30,
        "the pod to leave the pods file",
    )


def test_port_nothing_listens_on_reports_on_the_error_channel(
    cluster: ControlPlane,
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    _create_pod(api, namespace, "web", wait_for)
    credentials = _admin_credentials(cluster.kubeconfig, tmp_path)
    closed_port = PPROF_PORT + 1
    forwarded = _forward_over_websocket(cluster, credentials, namespace, "web", closed_port, None)
    port = closed_port.to_bytes(2, "little")
    assert forwarded.port_headers == {0: port, 1: port}
    assert forwarded.data == b""
    message = forwarded.error.decode()
    assert f"error forwarding port {closed_port} to pod {namespace}/web" in message
    assert "connection refused" in message


@pytest.mark.parametrize(
    ("verbs", "allowed"), [(["get"], False), (["get", "create"], True)], ids=["get", "get+create"]
)
def test_websocket_port_forward_needs_create_on_pods_portforward(
    cluster: ControlPlane,
    namespace: str,
    api: client.ApiClient,
    wait_for: Callable[..., Any],
    tmp_path: Path,
    verbs: list[str],
    allowed: bool,
) -> None:
    """Kubernetes 1.35+ (AuthorizePodWebsocketUpgradeCreatePermission) also asks for `create`
    on a websocket GET: `get` alone, enough before, is now refused."""
    _create_pod(api, namespace, "web", wait_for)
    kubeconfig = cluster.service_account_with_rules(
        namespace,
        "forwarder",
        [{"apiGroups": [""], "resources": ["pods/portforward"], "verbs": verbs}],
        tmp_path / "forwarder.kubeconfig",
    )
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    credentials = Credentials(ca=cluster.ca_cert, token=token)
    if allowed:
        forwarded = _forward_over_websocket(
            cluster, credentials, namespace, "web", PPROF_PORT, HTTP_GET
        )
        assert forwarded.data.startswith(b"HTTP/1.1 200 OK\r\n"), forwarded.data[:200]
    else:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            _forward_over_websocket(cluster, credentials, namespace, "web", PPROF_PORT, HTTP_GET)
        assert refused.value.status_code == 403


def test_kubelet_standin_wants_a_client_certificate_and_knows_only_running_pods(
    cluster: ControlPlane, namespace: str, api: client.ApiClient, wait_for: Callable[..., Any]
) -> None:
    pod = _create_pod(api, namespace, "web", wait_for)
    base = f"https://127.0.0.1:{cluster.kubelet_port}"
    anonymous = ssl.create_default_context(cafile=str(cluster.ca_cert))
    with pytest.raises(OSError, match=r"certificate required"):
        urllib.request.urlopen(f"{base}/healthz", context=anonymous, timeout=5)

    as_apiserver = ssl.create_default_context(cafile=str(cluster.ca_cert))
    pair = cluster.kubelet_client_pair
    as_apiserver.load_cert_chain(str(pair.cert), str(pair.key))
    with urllib.request.urlopen(f"{base}/healthz", context=as_apiserver, timeout=5) as reply:
        assert reply.read().strip() == b"ok"
    for path, what in [
        (f"{namespace}/nope", f"pod {namespace}/nope"),
        (f"{namespace}/web/not-{pod.metadata.uid}", f"pod {namespace}/web (uid"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(
                f"{base}/portForward/{path}?port={PPROF_PORT}", context=as_apiserver, timeout=5
            )
        assert missing.value.code == 404
        body = missing.value.read().decode()
        assert what in body and "is not running on the stand-in node" in body
