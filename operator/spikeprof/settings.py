"""Operator settings, read once from the environment at start-up.

Each setting is declared once, as a field of `Settings`: its environment variable, its default
(written as it would be in the environment), the parser that reads it, and the line the README's
settings table shows (tests/unit/test_settings.py checks the table against these declarations).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeprof.core.quantities import parse_quantity
from spikeprof.errors import SpikeprofError


class SettingsError(SpikeprofError, ValueError):
    """An environment variable holds a value the operator cannot use."""


Parser = Callable[[str, str], Any]  # (variable, text) -> value, or SettingsError


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


def _port(name: str, raw: str) -> int:
    value = _int(name, raw)
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name}={value} is not a port")
    return value


def _at_least(least: int) -> Parser:
    """A whole number of at least `least`."""

    def parse(name: str, raw: str) -> int:
        value = _int(name, raw)
        if value < least:
            raise SettingsError(f"{name} must be at least {least}")
        return value

    return parse


def _positive_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name} must be above 0")
    return value


def _http_url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={raw!r} is not an http:// or https:// URL")
    return raw.rstrip("/")


def _bytes(name: str, raw: str) -> int:
    try:
        value = parse_quantity(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a size such as 512Mi or 2Gi") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least one byte")
    return int(value)


@dataclass(frozen=True)
class Declaration:
    """One setting: where it is read from, its default, how it is parsed, what it is for."""

    env: str
    default: str | None
    """As written in the environment; None: unset, the field is None."""
    parse: Parser
    doc: str
    """The meaning, as the README's settings table shows it."""
    unset: str = "unset"
    """What an unset value means, for the README (when `default` is None)."""
    also: tuple[str, ...] = ()
    """Variables read when `env` is unset, in order."""

    def read(self, env: Mapping[str, str]) -> Any:
        for name in (self.env, *self.also):
            raw = env.get(name)
            if raw:  # an empty variable counts as unset
                return self.parse(name, raw)
        return None if self.default is None else self.parse(self.env, self.default)


def _declare(
    env: str,
    default: str | None,
    parse: Parser,
    doc: str,
    *,
    unset: str = "unset",
    also: tuple[str, ...] = (),
) -> dict[str, Declaration]:
    """A field's metadata: its declaration (`Settings.from_env({})` holds every default)."""
    return {"setting": Declaration(env, default, parse, doc, unset, also)}


@dataclass(frozen=True)
class Settings:
    artifact_root: Path = field(
        metadata=_declare(
            "SPIKEPROF_ARTIFACT_ROOT",
            "/var/lib/spikeprof",
            _path,
            "root of `output.volume` artifacts",
        )
    )
    """A volume mounted into the operator."""

    metrics_port: int = field(
        metadata=_declare(
            "SPIKEPROF_METRICS_PORT", "8080", _port, "Prometheus `/metrics`; `0` turns it off"
        )
    )

    metrics_address: str = field(
        metadata=_declare(
            "SPIKEPROF_METRICS_ADDRESS", "0.0.0.0", _text, "address `/metrics` binds to"
        )
    )
    """All interfaces by default, so Prometheus in the cluster can scrape the pod."""

    max_concurrent_pods: int = field(
        metadata=_declare(
            "SPIKEPROF_MAX_CONCURRENT_PODS",
            "32",
            _at_least(1),
            "pods profiled at once across all sessions",
        )
    )
    """On top of each session's limits.maxConcurrent; bounds the operator's sockets and disk
    writes."""

    analysis_processes: int = field(
        metadata=_declare(
            "SPIKEPROF_ANALYSIS_PROCESSES",
            "2",
            _at_least(0),
            "worker processes that decode, summarise and draw profiles, at nice +10; `0`: the "
            "operator's own threads",
        )
    )
    """Out of the operator's process, analysis never holds the lock its event loop needs, and
    at a lower priority it takes only the CPU the loop does not want."""

    poll_seconds: float = field(
        metadata=_declare(
            "SPIKEPROF_POLL_SECONDS",
            "1.0",
            _positive_seconds,
            "how often each session looks at its cached pods and triggers",
        )
    )
    """Each look reads memory only (the pod cache), so it is cheap."""

    prometheus_url: str | None = field(
        metadata=_declare(
            "SPIKEPROF_PROMETHEUS_URL", None, _text, "Prometheus for `metricsSource: prometheus`"
        )
    )
    """e.g. http://prometheus.monitoring:9090. Unset: such sessions report
    MetricsAvailable=False."""

    prometheus_token_file: Path | None = field(
        metadata=_declare(
            "SPIKEPROF_PROMETHEUS_TOKEN_FILE", None, _path, "bearer token for that Prometheus"
        )
    )
    """Read at start-up; unset sends no Authorization header."""

    alerts_port: int = field(
        metadata=_declare(
            "SPIKEPROF_ALERTS_PORT",
            "9095",
            _port,
            "Alertmanager webhook receiver; `0` turns it off",
        )
    )
    """The receiver answers POST /alerts."""

    alerts_address: str = field(
        metadata=_declare(
            "SPIKEPROF_ALERTS_ADDRESS", "0.0.0.0", _text, "address the receiver binds to"
        )
    )

    alerts_token_file: Path | None = field(
        metadata=_declare(
            "SPIKEPROF_ALERTS_TOKEN_FILE", None, _path, "bearer token Alertmanager must send"
        )
    )
    """A mounted Secret holding Alertmanager's http_config.authorization.credentials; unset
    accepts any caller."""

    alerts_tls_cert: Path | None = field(
        metadata=_declare(
            "SPIKEPROF_ALERTS_TLS_CERT", None, _path, "serve the receiver over TLS: its certificate"
        )
    )
    """Set together with SPIKEPROF_ALERTS_TLS_KEY, or neither (plain HTTP)."""

    alerts_tls_key: Path | None = field(
        metadata=_declare(
            "SPIKEPROF_ALERTS_TLS_KEY", None, _path, "serve the receiver over TLS: its key"
        )
    )

    spool_max_bytes: int = field(
        metadata=_declare(
            "SPIKEPROF_SPOOL_MAX_BYTES",
            "1Gi",
            _bytes,
            "a session's captures that may wait for its object store",
        )
    )
    """Past it, new captures are refused (as failed) until uploads resume. 1 GiB holds a
    capture a minute of 10 MiB for well over an hour of outage, on a node's disk (the
    operator's emptyDir) that is shared with everything else."""

    ui_port: int = field(
        metadata=_declare(
            "SPIKEPROF_UI_PORT", "0", _port, "the captures UI inside the operator; `0` turns it off"
        )
    )
    """The same read-only UI as `spikeprof ui`, over the artifact volume (the chart's
    ui.enabled sets it, with a Service of its own)."""

    ui_address: str = field(
        metadata=_declare("SPIKEPROF_UI_ADDRESS", "127.0.0.1", _text, "address the UI binds to")
    )
    """Loopback unless told otherwise: the chart sets 0.0.0.0 so that its Service reaches it."""

    ui_token_file: Path | None = field(
        metadata=_declare(
            "SPIKEPROF_UI_TOKEN_FILE", None, _path, "bearer token the UI asks of every caller"
        )
    )
    """A mounted Secret; unset shows the UI to whoever reaches its port."""

    ui_url: str | None = field(
        metadata=_declare(
            "SPIKEPROF_UI_URL",
            None,
            _http_url,
            "spikeprof's UI as people reach it; notifications link to captures there",
            unset="no links",
        )
    )
    """e.g. https://spikeprof.example.com. Unset: notifications say where the artifacts are
    (volume path or object-store URL) without a link."""

    notify_attempts: int = field(
        metadata=_declare(
            "SPIKEPROF_NOTIFY_ATTEMPTS",
            "4",
            _at_least(1),
            "tries per webhook notification, 1 s apart and doubling",
        )
    )
    """4 tries wait 1 + 2 + 4 s between them: a webhook that restarts is still told, and a
    dead one costs a bounded 7 s plus the timeouts, in the background."""

    notify_timeout_seconds: float = field(
        metadata=_declare(
            "SPIKEPROF_NOTIFY_TIMEOUT_SECONDS",
            "10",
            _positive_seconds,
            "how long one webhook try may take",
        )
    )
    """Slack answers in well under a second; 10 s is for a receiver behind a slow proxy."""

    kubeconfig: str | None = field(
        metadata=_declare(
            "SPIKEPROF_KUBECONFIG",
            None,
            _text,
            "kubeconfig when running outside a pod; kopf's watches use the same identity",
            unset="in-cluster",
            also=("KUBECONFIG",),
        )
    )
    """Unset in a pod, where the ServiceAccount is used. It is the operator's one identity:
    kopf's watches log in with it too, never with ~/.kube/config or another KUBECONFIG."""

    identity: str | None = field(
        metadata=_declare(
            "SPIKEPROF_IDENTITY",
            None,
            _text,
            "this replica's name in Leases and events",
            unset="host name",
        )
    )
    """The chart sets the pod name (downward API). Two replicas must never share one."""

    lease_namespace: str | None = field(
        metadata=_declare(
            "SPIKEPROF_LEASE_NAMESPACE",
            None,
            _text,
            "where the replicas' Leases live; needed by either HA mode",
        )
    )
    """The chart sets the release namespace (downward API), where its Role grants leases."""

    leader_election_lease: str | None = field(
        metadata=_declare(
            "SPIKEPROF_LEADER_ELECTION_LEASE",
            None,
            _text,
            "Lease name: active/standby, only its holder serves sessions",
            unset="one replica",
        )
    )
    """Unset: this replica owns every namespace (run exactly one)."""

    shard_lease_prefix: str | None = field(
        metadata=_declare(
            "SPIKEPROF_SHARD_LEASE_PREFIX",
            None,
            _text,
            "sharded mode: each replica holds Lease `<prefix>-<identity>`",
            unset="not sharded",
        )
    )
    """Labelled spikeprof.io/shard-group=<prefix>; the live shards are the unexpired Leases of
    the group, and each serves the namespaces rendezvous hashing gives it."""

    lease_seconds: int = field(
        metadata=_declare(
            "SPIKEPROF_LEASE_SECONDS",
            "15",
            _at_least(1),
            "how long others wait after a Lease's last renewal before taking it",
        )
    )
    """controller-runtime's default. A whole number: the Lease stores it as such."""

    renew_deadline_seconds: float = field(
        metadata=_declare(
            "SPIKEPROF_RENEW_DEADLINE_SECONDS",
            "10",
            _positive_seconds,
            "a holder stops acting this long after its last successful renewal began",
        )
    )
    """Below the lease duration, so that a holder that cannot renew has stopped before anyone
    may take over (controller-runtime's default)."""

    lease_retry_seconds: float = field(
        metadata=_declare(
            "SPIKEPROF_LEASE_RETRY_SECONDS",
            "2",
            _positive_seconds,
            "how often the holder renews and the others try to take over",
        )
    )
    """Below the renew deadline, so that a holder gets several tries before its fence closes
    (controller-runtime's default)."""

    def __post_init__(self) -> None:
        if (self.alerts_tls_cert is None) != (self.alerts_tls_key is None):
            raise SettingsError(
                "set both SPIKEPROF_ALERTS_TLS_CERT and SPIKEPROF_ALERTS_TLS_KEY, or neither"
            )
        self._check_leases()

    def _check_leases(self) -> None:
        if self.leader_election_lease and self.shard_lease_prefix:
            raise SettingsError(
                "set SPIKEPROF_LEADER_ELECTION_LEASE (active/standby) or "
                "SPIKEPROF_SHARD_LEASE_PREFIX (shards), not both"
            )
        mode = self.leader_election_lease and "SPIKEPROF_LEADER_ELECTION_LEASE"
        mode = mode or (self.shard_lease_prefix and "SPIKEPROF_SHARD_LEASE_PREFIX")
        if mode and not self.lease_namespace:
            raise SettingsError(f"{mode} needs SPIKEPROF_LEASE_NAMESPACE: where its Leases live")
        if not self.renew_deadline_seconds < self.lease_seconds:
            raise SettingsError(
                f"SPIKEPROF_RENEW_DEADLINE_SECONDS={self.renew_deadline_seconds:g} must be below "
                f"SPIKEPROF_LEASE_SECONDS={self.lease_seconds}: a holder that cannot renew must "
                "stop before another replica may take over"
            )
        if not self.lease_retry_seconds < self.renew_deadline_seconds:
            raise SettingsError(
                f"SPIKEPROF_LEASE_RETRY_SECONDS={self.lease_retry_seconds:g} must be below "
                f"SPIKEPROF_RENEW_DEADLINE_SECONDS={self.renew_deadline_seconds:g}: the holder "
                "must get to renew before its deadline"
            )

    def replica_identity(self) -> str:
        """SPIKEPROF_IDENTITY, else the host name (a pod's name in Kubernetes)."""
        return self.identity or socket.gethostname()

    def alerts_token(self) -> str | None:
        return _read_secret(self.alerts_token_file, "SPIKEPROF_ALERTS_TOKEN_FILE")

    def prometheus_token(self) -> str | None:
        return _read_secret(self.prometheus_token_file, "SPIKEPROF_PROMETHEUS_TOKEN_FILE")

    def ui_token(self) -> str | None:
        return _read_secret(self.ui_token_file, "SPIKEPROF_UI_TOKEN_FILE")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(**{f.name: declared.read(env) for f, declared in declarations()})


def declarations() -> list[tuple[dataclasses.Field[Any], Declaration]]:
    """Every setting, in the order of the README's table."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(Settings)]


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
