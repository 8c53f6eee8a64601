"""Start-up and clean-up: clients and services go into kopf's memo, never into globals."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import kopf

from spikeprof import __version__
from spikeprof.adapters import kube
from spikeprof.adapters.alert_receiver import AlertReceiver, tls_context
from spikeprof.adapters.pod_http import ProfileFetcher, pod_ip_accepts
from spikeprof.adapters.port_forward import port_forward_mounts
from spikeprof.adapters.volume import VolumeStore
from spikeprof.services.alerts import AlertIntake, SessionRegistry
from spikeprof.services.capture import Capturer
from spikeprof.services.routes import EndpointRouter
from spikeprof.services.sources import SourceFactory
from spikeprof.settings import Settings
from spikeprof.telemetry import Metrics

# kopf's retries of failed API requests, watches included (seconds between attempts). Its
# default grows to 21 s, so a session created after an outage waited up to 30 s to be seen; at
# most 3 s apart, and for about ten minutes before a request gives up (a watch then starts
# over at once), the operator follows the API server back within seconds.
API_RETRY_BACKOFFS = (0.5, 1.0, 2.0) + (3.0,) * 200
# Connecting to the API server takes milliseconds; one that does not answer in this time is
# away (the default waits for the whole request timeout of 5 minutes).
API_CONNECT_SECONDS = 10.0


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    # kopf's bookkeeping lives in our own annotations, and nothing of it in .status, whose
    # schema is strict so that `kubectl explain` describes every field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="spikeprof.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="spikeprof.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "spikeprof.io/finalizer"
    # Events come from kopf.event() calls with sentences written for people, not from log lines.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "spikeprof"
    settings.posting.reporting_instance = socket.gethostname()
    # One line per profile request is too much at INFO; failures are reported by the capture.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = API_RETRY_BACKOFFS
    settings.networking.connect_timeout = API_CONNECT_SECONDS
    # Events written during an API outage (a capture taken then) are posted once it is back.
    settings.posting.default_backoffs = API_RETRY_BACKOFFS
    # Serve exactly the namespaces and the CRD present at start, instead of watching all CRDs
    # and namespaces for changes: that would need cluster-wide read rights the work does not.
    settings.scanning.disabled = True

    config = Settings.from_env()
    config.artifact_root.mkdir(parents=True, exist_ok=True)
    metrics = Metrics.create()
    if config.metrics_port:
        metrics.serve(config.metrics_port, config.metrics_address)
    api_client = await kube.connect(config.kubeconfig)
    connections = config.max_concurrent_pods * 8
    port_forward = kube.PodPortForward(api_client, connections)
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections),
        follow_redirects=False,
        # Hosts under port-forward.invalid are pods reached through the API server.
        mounts=port_forward_mounts(port_forward, connections),
    )
    memo.config = config
    memo.metrics = metrics
    memo.api_client = api_client
    memo.http = http
    memo.port_forward = port_forward
    memo.status_writer = kube.SessionStatusWriter(api_client)
    memo.pod_cache = kube.PodCache(api_client)
    memo.secret_reader = kube.SecretReader(api_client)
    memo.workloads = kube.WorkloadApi(api_client)
    memo.capturer = Capturer(
        store=VolumeStore(config.artifact_root),
        fetcher=ProfileFetcher(http),
        router=EndpointRouter(pod_ip_accepts),
        metrics=metrics,
        operator_slots=asyncio.Semaphore(config.max_concurrent_pods),
    )
    memo.source_factory = SourceFactory(
        http=http,
        api_client=api_client,
        prometheus_url=config.prometheus_url,
        prometheus_token=config.prometheus_token(),
    )
    memo.version = __version__
    memo.sessions = SessionRegistry()
    memo.alert_receiver = None
    if config.alerts_port:
        intake = AlertIntake(memo.sessions, memo.status_writer)
        tls = None
        if config.alerts_tls_cert is not None and config.alerts_tls_key is not None:
            tls = tls_context(str(config.alerts_tls_cert), str(config.alerts_tls_key))
        memo.alert_receiver = AlertReceiver(
            intake.receive,
            address=config.alerts_address,
            port=config.alerts_port,
            token=config.alerts_token(),
            tls=tls,
        )
        await memo.alert_receiver.start()
    logger.info(
        "spikeprof %s started; artifacts go to %s; metrics on :%s; alerts on :%s.",
        __version__,
        config.artifact_root,
        config.metrics_port,
        config.alerts_port,
    )


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """kopf logs in as spikeprof's own client does: one identity for all of the operator.

    Without this, kopf would look for KUBECONFIG and ~/.kube/config on its own, and could watch
    another cluster than the one spikeprof writes to (or none, with only SPIKEPROF_KUBECONFIG).
    kopf calls it after start-up, and again whenever the API server refuses the credentials.
    """
    found = await kube.identity(memo.api_client)
    return kopf.ConnectionInfo(
        server=found.server,
        ca_path=found.ca_path,
        insecure=found.insecure,
        scheme=found.scheme,
        token=found.token,
        certificate_path=found.certificate_path,
        private_key_path=found.private_key_path,
        username=found.username,
        password=found.password,
        proxy_url=found.proxy_url,
    )


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    if memo.alert_receiver is not None:
        await memo.alert_receiver.stop()
    await memo.pod_cache.close()
    await memo.http.aclose()
    await memo.port_forward.close()
    await memo.api_client.close()
