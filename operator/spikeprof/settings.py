"""Operator settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spikeprof.core.quantities import parse_quantity
from spikeprof.errors import SpikeprofError


class SettingsError(SpikeprofError, ValueError):
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


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse_quantity(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a size such as 512Mi or 2Gi") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least one byte")
    return int(value)


def _read_secret(path: Path | None, name: str) -> str | None:
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise SettingsError(f"{name}={path}: {error}") from None
    if not value:
        raise SettingsError(f"{name}={path} is empty")
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


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
    in a pod, where the ServiceAccount is used. It is the operator's one identity: kopf's
    watches log in with it too, never with ~/.kube/config or another KUBECONFIG."""

    prometheus_url: str | None = None
    """SPIKEPROF_PROMETHEUS_URL: base URL of the Prometheus that `metricsSource: prometheus`
    sessions query, e.g. http://prometheus.monitoring:9090. Unset: such sessions report
    MetricsAvailable=False."""

    prometheus_token_file: Path | None = None
    """SPIKEPROF_PROMETHEUS_TOKEN_FILE: file holding a bearer token for Prometheus (read at
    start-up); unset sends no Authorization header."""

    alerts_port: int = 9095
    """SPIKEPROF_ALERTS_PORT: port of the Alertmanager webhook receiver (POST /alerts); 0 turns
    it off. Default 9095."""

    alerts_address: str = "0.0.0.0"
    """SPIKEPROF_ALERTS_ADDRESS: address the receiver binds to. Default all interfaces."""

    alerts_token_file: Path | None = None
    """SPIKEPROF_ALERTS_TOKEN_FILE: file (a mounted Secret) holding the bearer token Alertmanager
    must send (its http_config.authorization.credentials); unset accepts any caller."""

    alerts_tls_cert: Path | None = None
    """SPIKEPROF_ALERTS_TLS_CERT and SPIKEPROF_ALERTS_TLS_KEY: serve the receiver over TLS with
    this certificate and key; unset serves plain HTTP."""

    alerts_tls_key: Path | None = None
    spool_max_bytes: int = 1 << 30
    """SPIKEPROF_SPOOL_MAX_BYTES: bytes of one session's captures that may wait on the volume
    for its object store; past it, new captures are refused (as failed) until uploads resume."""

    def alerts_token(self) -> str | None:
        return _read_secret(self.alerts_token_file, "SPIKEPROF_ALERTS_TOKEN_FILE")

    def prometheus_token(self) -> str | None:
        return _read_secret(self.prometheus_token_file, "SPIKEPROF_PROMETHEUS_TOKEN_FILE")

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
            prometheus_token_file=_path(env, "SPIKEPROF_PROMETHEUS_TOKEN_FILE"),
            alerts_port=_int(env, "SPIKEPROF_ALERTS_PORT", 9095),
            alerts_address=env.get("SPIKEPROF_ALERTS_ADDRESS", "0.0.0.0"),
            alerts_token_file=_path(env, "SPIKEPROF_ALERTS_TOKEN_FILE"),
            alerts_tls_cert=_path(env, "SPIKEPROF_ALERTS_TLS_CERT"),
            alerts_tls_key=_path(env, "SPIKEPROF_ALERTS_TLS_KEY"),
            spool_max_bytes=_bytes(env, "SPIKEPROF_SPOOL_MAX_BYTES", 1 << 30),
        )
        if (settings.alerts_tls_cert is None) != (settings.alerts_tls_key is None):
            raise SettingsError(
                "set both SPIKEPROF_ALERTS_TLS_CERT and SPIKEPROF_ALERTS_TLS_KEY, or neither"
            )
        if not 0 <= settings.metrics_port <= 65535:
            raise SettingsError(f"SPIKEPROF_METRICS_PORT={settings.metrics_port} is not a port")
        if settings.max_concurrent_pods < 1:
            raise SettingsError("SPIKEPROF_MAX_CONCURRENT_PODS must be at least 1")
        if settings.poll_seconds <= 0:
            raise SettingsError("SPIKEPROF_POLL_SECONDS must be above 0")
        return settings
