"""The local cluster's daprd gets the flags Dapr's injector gives, translated to a stand-in pod."""

from __future__ import annotations

from pathlib import Path

import pytest
from localcluster.dapr_sidecar import daprd_plan, translate_listen_addresses

ADDRESS, LOOPBACK = "127.20.1.1", "127.20.1.2"


def flags(annotations: dict[str, str]) -> list[str]:
    plan = daprd_plan(
        Path("/bin/daprd"), "web-0", annotations, ADDRESS, LOOPBACK, Path("/r"), Path("/c")
    )
    return plan.command


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[::1],127.0.0.1", [LOOPBACK]),  # the injector's default: the pod's loopback only
        ("0.0.0.0", [ADDRESS, LOOPBACK]),  # every address of the pod
        ("[::]", [ADDRESS, LOOPBACK]),
        ("localhost", [LOOPBACK]),
        ("10.1.2.3", [ADDRESS]),  # the pod IP itself, as the pod would see it
    ],
)
def test_listen_addresses_become_the_stand_in_pods_own(value: str, expected: list[str]) -> None:
    assert translate_listen_addresses(value, ADDRESS, LOOPBACK) == expected


def test_the_defaults_put_pprof_and_the_api_on_the_loopback_and_metrics_on_the_pod_ip() -> None:
    command = flags({"dapr.io/enabled": "true", "dapr.io/enable-profiling": "true"})
    assert flag(command, "--dapr-listen-addresses") == LOOPBACK
    assert flag(command, "--metrics-listen-address") == ADDRESS
    assert flag(command, "--metrics-port") == "9090"
    assert flag(command, "--app-id") == "web-0"  # the injector falls back to the pod's name
    assert "--enable-profiling" in command
    assert "--profile-port" not in command  # the injector never sets it: daprd's 7777


@pytest.mark.parametrize("value", [None, "false", "no"])
def test_profiling_is_on_only_when_the_pod_asks_for_it(value: str | None) -> None:
    annotations = {"dapr.io/enabled": "true"}
    if value is not None:
        annotations["dapr.io/enable-profiling"] = value
    assert "--enable-profiling" not in flags(annotations)
