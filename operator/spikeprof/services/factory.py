"""The operator's wiring, built once from its settings: clients, shared services, per-session parts.

Start-up builds one `Factory` (`Factory.start`); the kopf handlers ask it for what they need
(`session`, `armer`) and clean-up closes it. Nothing here decides anything: it only connects the
adapters to the services, so that handlers stay a few lines each.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from spikeprof import __version__
from spikeprof.adapters import kube
from spikeprof.adapters.alert_receiver import AlertReceiver, tls_context
from spikeprof.adapters.events import BACKOFFS as event_backoffs
from spikeprof.adapters.events import EventPoster
from spikeprof.adapters.pod_http import ProfileFetcher, pod_ip_accepts
from spikeprof.adapters.port_forward import port_forward_mounts
from spikeprof.adapters.volume import VolumeStore
from spikeprof.adapters.webhook import WebhookPoster
from spikeprof.services import replicas
from spikeprof.services.alerts import AlertIntake, SessionRegistry
from spikeprof.services.analysis import analyser
from spikeprof.services.arming import Armer
from spikeprof.services.capture import ANALYSES_AT_ONCE, Capturer
from spikeprof.services.notify import Deliveries, DeliveryPolicy, Notifier
from spikeprof.services.outputs import SessionOutputs
from spikeprof.services.ownership import (
    EveryNamespace,
    FencedStatusWriter,
    FencedWorkloads,
    Ownership,
    fence,
)
from spikeprof.services.routes import EndpointRouter
from spikeprof.services.session import PostEvent, SessionWorker
from spikeprof.services.sources import SourceFactory
from spikeprof.services.triggers import SpikeWatcher
from spikeprof.settings import Settings
from spikeprof.telemetry import Metrics

CONNECTIONS_PER_POD = 8
"""HTTP connections allowed per pod profiled at once (profiles of a pod are fetched together)."""


@dataclass
class Factory:
    """Everything the operator holds for its lifetime, and how a session's parts are built."""

    settings: Settings
    metrics: Metrics
    api_client: Any  # kubernetes_asyncio's ApiClient; only adapters.kube knows its type
    http: httpx.AsyncClient
    port_forward: kube.PodPortForward
    status_writer: kube.SessionStatusWriter
    pod_cache: kube.PodCache
    secret_reader: kube.SecretReader
    workloads: kube.WorkloadApi
    capturer: Capturer
    sources: SourceFactory
    sessions: SessionRegistry
    webhooks: WebhookPoster
    deliveries: Deliveries
    events: EventPoster
    alert_receiver: AlertReceiver | None = None
    # Where this replica may act: everywhere, unless leader election or shards say otherwise.
    ownership: Ownership = field(default_factory=EveryNamespace)
    stop_ownership: replicas.Stop | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Factory:
        """Connect the clients, start /metrics and the alert receiver (as configured)."""
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        metrics = Metrics.create()
        if settings.metrics_port:
            metrics.serve(settings.metrics_port, settings.metrics_address)
        api_client = await kube.connect(settings.kubeconfig)
        kube.name_writes(api_client, settings.replica_identity(), __version__)
        connections = settings.max_concurrent_pods * CONNECTIONS_PER_POD
        port_forward = kube.PodPortForward(api_client, connections)
        http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections),
            follow_redirects=False,
            # Hosts under port-forward.invalid are pods reached through the API server.
            mounts=port_forward_mounts(port_forward, connections),
        )
        factory = cls(
            settings=settings,
            metrics=metrics,
            api_client=api_client,
            http=http,
            port_forward=port_forward,
            status_writer=kube.SessionStatusWriter(api_client),
            pod_cache=kube.PodCache(api_client),
            secret_reader=kube.SecretReader(api_client),
            workloads=kube.WorkloadApi(api_client),
            capturer=Capturer(
                store=VolumeStore(settings.artifact_root),
                fetcher=ProfileFetcher(http),
                router=EndpointRouter(pod_ip_accepts),
                metrics=metrics,
                operator_slots=asyncio.Semaphore(settings.max_concurrent_pods),
                analysis=analyser(settings.analysis_processes),
                # As many analyses at once as there are processes to run them.
                analysis_slots=asyncio.Semaphore(settings.analysis_processes or ANALYSES_AT_ONCE),
            ),
            sources=SourceFactory(
                http=http,
                api_client=api_client,
                prometheus_url=settings.prometheus_url,
                prometheus_token=settings.prometheus_token(),
            ),
            sessions=SessionRegistry(),
            # Its own client: a slow webhook never holds a connection a pod's profile needs.
            webhooks=WebhookPoster(
                httpx.AsyncClient(follow_redirects=False), settings.notify_timeout_seconds
            ),
            deliveries=Deliveries(),
            events=EventPoster(
                api_client,
                component="spikeprof",
                instance=settings.replica_identity(),
                backoffs=event_backoffs,
            ),
        )
        # Before the alert receiver answers and before kopf starts any session's daemon: a
        # standby must never record an alert or serve a session, not even at start.
        factory.ownership, factory.stop_ownership = await replicas.start_ownership(
            settings, api_client
        )
        if settings.alerts_port:
            factory.alert_receiver = factory._alert_receiver()
            await factory.alert_receiver.start()
        return factory

    def _alert_receiver(self) -> AlertReceiver:
        tls = None
        if self.settings.alerts_tls_cert is not None and self.settings.alerts_tls_key is not None:
            tls = tls_context(str(self.settings.alerts_tls_cert), str(self.settings.alerts_tls_key))
        return AlertReceiver(
            AlertIntake(
                self.sessions, self.status_writer, self.pod_cache.lookup, self.metrics
            ).receive,
            address=self.settings.alerts_address,
            port=self.settings.alerts_port,
            token=self.settings.alerts_token(),
            tls=tls,
            not_ready=self.not_ready,
        )

    def not_ready(self) -> str | None:
        """Why alerts sent here now would not be recorded (None: they would): /readyz."""
        if not self.ownership.ready():
            return "this replica is not the leader (a standby), or not a live shard"
        waiting = self.sessions.unregistered(self.ownership.owns)
        if waiting:
            shown = ", ".join(waiting[:5]) + (" ..." if len(waiting) > 5 else "")
            return f"{len(waiting)} session(s) that take alerts are not served yet: {shown}"
        return None

    async def close(self) -> None:
        if self.alert_receiver is not None:
            await self.alert_receiver.stop()
        if self.stop_ownership is not None:
            await self.stop_ownership()  # releases the Lease: a standby leads at its next try
        await self.events.close()
        # Notifications under way get one try's time to finish.
        await self.deliveries.close(grace=self.settings.notify_timeout_seconds)
        await self.webhooks.http.aclose()
        await self.pod_cache.close()
        await self.http.aclose()
        await self.port_forward.close()
        await self.api_client.close()
        self.capturer.analysis.close()

    async def identity(self) -> kube.Identity:
        """Who the operator is to the API server (kopf's watches log in as the same)."""
        return await kube.identity(self.api_client)

    def armer(self, namespace: str, name: str) -> Armer:
        workloads = FencedWorkloads(self.workloads, self.ownership)
        return Armer(namespace, name, workloads, self.capturer.fetcher, self.capturer.router)

    def outputs(self, namespace: str, name: str) -> SessionOutputs:
        return SessionOutputs(
            namespace,
            name,
            self.settings.artifact_root,
            self.secret_reader.read,
            spool_max_bytes=self.settings.spool_max_bytes,
        )

    def notifier(self, namespace: str, name: str) -> Notifier:
        return Notifier(
            namespace,
            name,
            read_secret=self.secret_reader.read,
            poster=self.webhooks,
            deliveries=self.deliveries,
            policy=DeliveryPolicy(attempts=self.settings.notify_attempts),
            metrics=self.metrics,
            artifact_root=self.settings.artifact_root,
            ui_url=self.settings.ui_url,
        )

    def worker(self, namespace: str, name: str, post_event: PostEvent) -> SessionWorker:
        pod_cache = self.pod_cache
        notifier = self.notifier(namespace, name)
        worker = SessionWorker(
            namespace=namespace,
            name=name,
            writer=FencedStatusWriter(self.status_writer, self.ownership),
            capturer=self.capturer,
            version=__version__,
            pods_in_namespace=lambda: pod_cache.pods(namespace),
            pods_version=lambda: pod_cache.version(namespace),
            post_event=post_event,
            spikes=SpikeWatcher(self.sources),
            registry=self.sessions,
            armer=self.armer(namespace, name),
            outputs=self.outputs(namespace, name),
            port_forward_missing=self.port_forward.missing_rights,
            notifier=notifier,
            fence=functools.partial(fence, self.ownership, namespace),
        )
        notifier.on_settled = worker.wakeup.set  # the condition is written at the next look
        return worker

    async def session_exists(self, namespace: str, name: str) -> bool:
        return await kube.SessionApi(self.api_client).read_session(namespace, name) is not None

    @contextlib.asynccontextmanager
    async def session(
        self, namespace: str, name: str, post_event: PostEvent
    ) -> AsyncIterator[SessionWorker]:
        """A session's worker, with its namespace's pods cached and the session counted."""
        worker = self.worker(namespace, name, post_event)
        self.metrics.sessions.inc()
        try:
            await self.pod_cache.acquire(namespace)
            self.metrics.pod_watches.labels(namespace).set(1)
            try:
                yield worker
            finally:
                # The last session of the namespace served here stops its pod watch.
                self.pod_cache.release(namespace)
                watching = self.pod_cache.watching(namespace)
                self.metrics.pod_watches.labels(namespace).set(1 if watching else 0)
        finally:
            worker.unregister()
            self.metrics.sessions.dec()
