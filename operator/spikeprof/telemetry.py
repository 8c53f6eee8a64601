"""The operator's own Prometheus metrics, served on /metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    profiles: Counter
    capture_seconds: Histogram
    bytes_written: Counter
    errors: Counter
    captures: Counter
    sessions: Gauge
    pod_watches: Gauge
    notifications: Counter
    notification_attempts: Counter
    alerts: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            profiles=Counter(
                "spikeprof_profiles",
                "Profiles fetched, by profile type and result (succeeded, failed).",
                ["type", "result"],
                registry=registry,
            ),
            capture_seconds=Histogram(
                "spikeprof_capture_duration_seconds",
                "Time from a capture's start to its last pod's artifacts being written.",
                buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
                registry=registry,
            ),
            bytes_written=Counter(
                "spikeprof_artifact_bytes_written",
                "Bytes of profiles written to the artifact store.",
                registry=registry,
            ),
            errors=Counter(
                "spikeprof_profile_errors",
                "Profiles that failed, by failure reason.",
                ["reason"],
                registry=registry,
            ),
            captures=Counter(
                "spikeprof_captures",
                "Captures run, by trigger and result (Succeeded, PartiallyFailed, Failed).",
                ["trigger", "result"],
                registry=registry,
            ),
            sessions=Gauge(
                "spikeprof_sessions_active",
                "ProfilingSessions the operator is serving.",
                registry=registry,
            ),
            pod_watches=Gauge(
                "spikeprof_pod_watches",
                "Pod watches this replica runs, by namespace: 1 while any session of the "
                "namespace is served here (a shard watches only its own namespaces), else 0.",
                ["namespace"],
                registry=registry,
            ),
            notifications=Counter(
                "spikeprof_notifications",
                "Webhook notifications, by format (json, slack) and result (delivered, failed: "
                "every try failed).",
                ["format", "result"],
                registry=registry,
            ),
            notification_attempts=Counter(
                "spikeprof_notification_attempts",
                "Tries to post a notification, by format and result (ok, failed).",
                ["format", "result"],
                registry=registry,
            ),
            alerts=Counter(
                "spikeprof_alerts_received",
                "Firing alerts received, per session they match, by result: recorded (pending "
                "in the session's status), duplicate (already pending or handled), unmatched "
                "(no session's pods; counted once per alert), refused (the session holds "
                "its limit of pending alerts; answered 503), failed (the status write failed; "
                "answered 503), gone (the session was deleted meanwhile).",
                ["result"],
                registry=registry,
            ),
        )

    def serve(self, port: int, address: str) -> None:
        start_http_server(port, addr=address, registry=self.registry)
