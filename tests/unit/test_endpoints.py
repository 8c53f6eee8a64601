"""Where a pod's pprof lives: from the session, the pod's annotations, or Dapr's default."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.pods import EndpointProblem, pod_info, resolve_endpoint
from spikeprof.core.spec import TargetSpec


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
    with pytest.raises(EndpointProblem, match=message):
        resolve_endpoint(pod(annotations), target())


def test_pod_readiness_comes_from_phase_condition_ip_and_deletion() -> None:
    assert pod().reachable
    assert not pod(ip=None).reachable
