"""The operator's settings from its environment: defaults, and a sentence for each bad value."""

from __future__ import annotations

import pytest

from spikeprof.settings import Settings, SettingsError


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
        ({"SPIKEPROF_ALERTS_TLS_CERT": "/tls.crt"}, "set both SPIKEPROF_ALERTS_TLS_CERT"),
    ],
)
def test_bad_values_are_named_with_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
