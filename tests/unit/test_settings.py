"""The operator's settings from its environment: defaults, and a sentence for each bad value."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from spikeprof.settings import Declaration, Settings, SettingsError, declarations


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.metrics_port, settings.alerts_port) == (8080, 9095)
    assert settings.max_concurrent_pods == 32
    assert settings.spool_max_bytes == 1 << 30


def test_the_spool_bound_is_a_kubernetes_size() -> None:
    assert Settings.from_env({"SPIKEPROF_SPOOL_MAX_BYTES": "512Mi"}).spool_max_bytes == 512 << 20


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPIKEPROF_SPOOL_MAX_BYTES": "lots"}, "is not a size such as 512Mi or 2Gi"),
        ({"SPIKEPROF_SPOOL_MAX_BYTES": "0"}, "must be at least one byte"),
        ({"SPIKEPROF_METRICS_PORT": "http"}, "is not a whole number"),
        ({"SPIKEPROF_METRICS_PORT": "70000"}, "is not a port"),
        ({"SPIKEPROF_ANALYSIS_PROCESSES": "-1"}, "must be at least 0"),
        ({"SPIKEPROF_ALERTS_TLS_CERT": "/tls.crt"}, "set both SPIKEPROF_ALERTS_TLS_CERT"),
    ],
)
def test_bad_values_are_named_with_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_readme_settings_table_lists_every_declared_setting_as_declared() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Running the operator", 1)[1]
    header = "| variable | default | meaning |\n|---|---|---|\n"
    table = section.split(header, 1)[1].split("\n\n", 1)[0].splitlines()
    expected = [_row(declared) for _, declared in declarations()]
    assert table == expected, "README.md's settings table should read:\n" + "\n".join(expected)


def test_every_setting_has_a_default_or_is_unset_by_default() -> None:
    defaults = Settings.from_env({})
    for field, declared in declarations():
        assert (getattr(defaults, field.name) is None) == (declared.default is None), declared.env


def _row(declared: Declaration) -> str:
    names = " / ".join(f"`{name}`" for name in (declared.env, *declared.also))
    default = declared.unset if declared.default is None else f"`{declared.default}`"
    return f"| {names} | {default} | {declared.doc} |"


def test_kubeconfig_falls_back_to_the_usual_variable() -> None:
    assert Settings.from_env({"KUBECONFIG": "/k"}).kubeconfig == "/k"
    both = {"KUBECONFIG": "/k", "SPIKEPROF_KUBECONFIG": "/spikeprof"}
    assert Settings.from_env(both).kubeconfig == "/spikeprof"


def test_high_availability_is_off_and_timed_as_controller_runtime_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.leader_election_lease is None and settings.shard_lease_prefix is None
    assert (settings.lease_seconds, settings.renew_deadline_seconds) == (15, 10.0)
    assert settings.lease_retry_seconds == 2.0


def test_the_replica_identity_defaults_to_the_host_name() -> None:
    assert Settings.from_env({}).replica_identity() == socket.gethostname()
    assert Settings.from_env({"SPIKEPROF_IDENTITY": "spikeprof-0"}).replica_identity() == (
        "spikeprof-0"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "SPIKEPROF_LEADER_ELECTION_LEASE": "spikeprof",
                "SPIKEPROF_SHARD_LEASE_PREFIX": "spikeprof",
                "SPIKEPROF_LEASE_NAMESPACE": "ops",
            },
            "not both",
        ),
        ({"SPIKEPROF_LEADER_ELECTION_LEASE": "spikeprof"}, "needs SPIKEPROF_LEASE_NAMESPACE"),
        ({"SPIKEPROF_SHARD_LEASE_PREFIX": "shard"}, "needs SPIKEPROF_LEASE_NAMESPACE"),
        ({"SPIKEPROF_RENEW_DEADLINE_SECONDS": "15"}, "must be below SPIKEPROF_LEASE_SECONDS=15"),
        (
            {"SPIKEPROF_LEASE_SECONDS": "4", "SPIKEPROF_RENEW_DEADLINE_SECONDS": "3"}
            | {"SPIKEPROF_LEASE_RETRY_SECONDS": "3"},
            "SPIKEPROF_LEASE_RETRY_SECONDS=3 must be below SPIKEPROF_RENEW_DEADLINE_SECONDS=3",
        ),
        ({"SPIKEPROF_LEASE_SECONDS": "0"}, "must be at least 1"),
    ],
)
def test_lease_settings_that_could_let_two_replicas_act_are_refused(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
