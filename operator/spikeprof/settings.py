"""Operator settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    artifact_root: Path
    """SPIKEPROF_ARTIFACT_ROOT: where output.volume artifacts go (a volume mounted into the
    operator). Default /var/lib/spikeprof."""

    metrics_port: int
    """SPIKEPROF_METRICS_PORT: port of the operator's Prometheus /metrics; 0 turns it off.
    Default 8080."""

    metrics_address: str
    """SPIKEPROF_METRICS_ADDRESS: address /metrics binds to. Default 0.0.0.0 (all interfaces),
    so Prometheus in the cluster can scrape the pod."""

    max_concurrent_pods: int
    """SPIKEPROF_MAX_CONCURRENT_PODS: pods profiled at once across all sessions, on top of each
    session's limits.maxConcurrent; bounds the operator's sockets and disk writes. Default 32."""

    poll_seconds: float
    """SPIKEPROF_POLL_SECONDS: how often each session's loop looks at its (locally cached) pods
    and triggers. Reads memory only, so it is cheap. Default 1.0."""

    kubeconfig: str | None
    """SPIKEPROF_KUBECONFIG (or KUBECONFIG): kubeconfig for running outside the cluster; unset
    in a pod, where the ServiceAccount is used."""

    prometheus_url: str | None = None
    """SPIKEPROF_PROMETHEUS_URL: base URL of the Prometheus that `metricsSource: prometheus`
    sessions query, e.g. http://prometheus.monitoring:9090. Unset: such sessions report
    MetricsAvailable=False."""

    prometheus_token_file: Path | None = None
    """SPIKEPROF_PROMETHEUS_TOKEN_FILE: file holding a bearer token for Prometheus (read at
    start-up); unset sends no Authorization header."""

    def prometheus_token(self) -> str | None:
        if self.prometheus_token_file is None:
            return None
        try:
            return self.prometheus_token_file.read_text().strip()
        except OSError as error:
            raise SettingsError(
                f"SPIKEPROF_PROMETHEUS_TOKEN_FILE={self.prometheus_token_file}: {error}"
            ) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            artifact_root=Path(env.get("SPIKEPROF_ARTIFACT_ROOT", "/var/lib/spikeprof")),
            metrics_port=_int(env, "SPIKEPROF_METRICS_PORT", 8080),
            metrics_address=env.get("SPIKEPROF_METRICS_ADDRESS", "0.0.0.0"),
            max_concurrent_pods=_int(env, "SPIKEPROF_MAX_CONCURRENT_PODS", 32),
            poll_seconds=_float(env, "SPIKEPROF_POLL_SECONDS", 1.0),
            kubeconfig=env.get("SPIKEPROF_KUBECONFIG") or env.get("KUBECONFIG") or None,
            prometheus_url=env.get("SPIKEPROF_PROMETHEUS_URL") or None,
            prometheus_token_file=(
                Path(env["SPIKEPROF_PROMETHEUS_TOKEN_FILE"])
                if env.get("SPIKEPROF_PROMETHEUS_TOKEN_FILE")
                else None
            ),
        )
        if not 0 <= settings.metrics_port <= 65535:
            raise SettingsError(f"SPIKEPROF_METRICS_PORT={settings.metrics_port} is not a port")
        if settings.max_concurrent_pods < 1:
            raise SettingsError("SPIKEPROF_MAX_CONCURRENT_PODS must be at least 1")
        if settings.poll_seconds <= 0:
            raise SettingsError("SPIKEPROF_POLL_SECONDS must be above 0")
        return settings
