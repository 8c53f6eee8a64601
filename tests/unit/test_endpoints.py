"""Where a pod's pprof lives: from the session, the pod's annotations, or Dapr's default."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.endpoints import (
    EndpointError,
    pod_of_port_forward_host,
    port_forward_host,
    pprof_port,
    resolve_endpoint,
)
from spikeprof.core.pods import pod_info
from spikeprof.core.spec import TargetSpec
from spikeprof.services.routes import RETRY_DIRECT_SECONDS, EndpointRouter


def pod(annotations: dict[str, str] | None = None, ip: str | None = "10.0.0.7") -> Any:
    return pod_info(
        {
            "metadata": {
                "name": "p",
                "namespace": "n",
                "uid": "u",
                "annotations": annotations or {},
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "daprd"}]},
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )


def target(**kw: Any) -> TargetSpec:
    values: dict[str, Any] = dict(
        kind="pprof", port=None, path_prefix="/debug/pprof", container=None, access="direct"
    )
    values.update(kw)
    return TargetSpec(**values)


def test_the_session_port_wins() -> None:
    endpoint = resolve_endpoint(pod({"spikeprof.io/pprof-port": "9999"}), target(port=6060))
    assert endpoint.base_url == "http://10.0.0.7:6060/debug/pprof"
    assert endpoint.container == "app"


def test_pod_annotations_give_port_and_path_when_the_session_does_not() -> None:
    annotations = {"spikeprof.io/pprof-port": "6061", "spikeprof.io/pprof-path": "/internal/pprof/"}
    endpoint = resolve_endpoint(pod(annotations), target())
    assert endpoint.base_url == "http://10.0.0.7:6061/internal/pprof"


def test_dapr_defaults_to_the_sidecar_on_7777() -> None:
    endpoint = resolve_endpoint(pod(), target(kind="dapr"))
    assert endpoint.base_url == "http://10.0.0.7:7777/debug/pprof"
    assert endpoint.container == "daprd"


def test_ipv6_pod_addresses_are_bracketed() -> None:
    assert resolve_endpoint(pod(ip="fd00::7"), target(port=1)).base_url.startswith(
        "http://[fd00::7]:1/"
    )


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {},
            "no pprof port: set spec.target.port or annotate the pod with spikeprof.io/pprof-port",
        ),
        ({"spikeprof.io/pprof-port": "http"}, "spikeprof.io/pprof-port='http' is not a port"),
    ],
)
def test_a_missing_endpoint_is_explained(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        resolve_endpoint(pod(annotations), target())


def test_pod_readiness_comes_from_phase_condition_ip_and_deletion() -> None:
    assert pod().reachable
    assert not pod(ip=None).reachable


def test_port_forward_endpoints_name_the_pod_under_a_domain_that_never_resolves() -> None:
    endpoint = resolve_endpoint(pod(ip=None), target(kind="dapr"), "portForward")
    assert endpoint.base_url == "http://p.n.port-forward.invalid:7777/debug/pprof"
    assert endpoint.access == "portForward"


def test_direct_endpoints_need_an_ip_and_port_forward_ones_do_not() -> None:
    with pytest.raises(EndpointError, match="no IP"):
        resolve_endpoint(pod(ip=None), target(port=1))
    assert resolve_endpoint(pod(ip=None), target(port=1), "portForward").base_url.startswith(
        "http://p.n.port-forward.invalid:1/"
    )


@pytest.mark.parametrize("name", ["web-0", "web.v2.blue", "a"])
def test_port_forward_hosts_give_back_namespace_and_pod(name: str) -> None:
    assert pod_of_port_forward_host(port_forward_host("shop", name)) == ("shop", name)


@pytest.mark.parametrize("host", ["10.0.0.7", "port-forward.invalid", "x.port-forward.invalid"])
def test_other_hosts_are_not_port_forward_hosts(host: str) -> None:
    assert pod_of_port_forward_host(host) is None


def test_an_annotated_port_out_of_range_is_refused() -> None:
    with pytest.raises(EndpointError, match="not a TCP port"):
        pprof_port(pod({"spikeprof.io/pprof-port": "70000"}), target())


class Dialer:
    def __init__(self, accepts: bool) -> None:
        self.accepts = accepts
        self.dialed: list[tuple[str, int]] = []

    async def __call__(self, ip: str, port: int) -> bool:
        self.dialed.append((ip, port))
        return self.accepts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_auto_dials_a_pod_directly_for_good_once_its_ip_accepts() -> None:
    dialer = Dialer(True)
    router = EndpointRouter(dialer)
    for _ in range(3):
        endpoint = await router.endpoint(pod(), target(kind="dapr", access="auto"))
        assert endpoint.access == "direct"
    assert dialer.dialed == [("10.0.0.7", 7777)]


async def test_auto_tunnels_while_the_ip_does_not_accept_and_tries_it_again_later() -> None:
    dialer, clock = Dialer(False), Clock()
    router = EndpointRouter(dialer, clock)
    spec = target(kind="dapr", access="auto")
    assert (await router.endpoint(pod(), spec)).access == "portForward"
    clock.now += RETRY_DIRECT_SECONDS - 1
    assert (await router.endpoint(pod(), spec)).access == "portForward"
    assert len(dialer.dialed) == 1  # not dialed again yet
    dialer.accepts = True  # say profiling got armed, or a NetworkPolicy changed
    clock.now += 1
    assert (await router.endpoint(pod(), spec)).access == "direct"
    assert len(dialer.dialed) == 2


async def test_auto_without_a_pod_ip_goes_through_the_api_server() -> None:
    dialer = Dialer(True)
    endpoint = await EndpointRouter(dialer).endpoint(pod(ip=None), target(port=6060, access="auto"))
    assert endpoint.access == "portForward"
    assert dialer.dialed == []


@pytest.mark.parametrize("access", ["direct", "portForward"])
async def test_fixed_access_modes_never_probe(access: str) -> None:
    dialer = Dialer(False)
    endpoint = await EndpointRouter(dialer).endpoint(pod(), target(port=6060, access=access))
    assert endpoint.access == access
    assert dialer.dialed == []


@pytest.mark.parametrize(
    "path",
    [
        "@vault-0.vault.port-forward.invalid:8200/v1/sys",
        "/debug@169.254.169.254/",
        "debug/pprof",
        "/pprof?x=1",
        "/pprof#frag",
        "/" + "a" * 300,
    ],
)
def test_a_pod_annotation_cannot_steer_the_url_to_another_host(path: str) -> None:
    annotations = {"spikeprof.io/pprof-port": "7777", "spikeprof.io/pprof-path": path}
    for access in ("direct", "portForward"):
        with pytest.raises(EndpointError, match="is not a URL path"):
            resolve_endpoint(pod(annotations), target(), access)  # type: ignore[arg-type]


def test_a_pod_ip_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(EndpointError, match="is not an IP address"):
        resolve_endpoint(pod(ip="evil.example:80@10.0.0.7"), target(port=1))
