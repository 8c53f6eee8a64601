"""One daemon per ProfilingSession; the loop's logic lives in services.session."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from spikeprof.adapters.kube import ApiUnavailableError, KubeError, PodCache, SessionGoneError
from spikeprof.core.arming import parse_workload
from spikeprof.services.arming import Armer
from spikeprof.services.outputs import SessionOutputs
from spikeprof.services.session import SessionWorker
from spikeprof.services.triggers import SpikeWatcher


@kopf.daemon("spikeprof.io", "v1alpha1", "profilingsessions", cancellation_timeout=10.0)
async def serve_session(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    namespace = namespace or ""  # sessions are namespaced; kopf types it for cluster kinds too
    pod_cache: PodCache = memo.pod_cache

    # body, meta, spec and status are kopf's live views: each look sees the latest watch event.
    worker = SessionWorker(
        namespace=namespace,
        name=name,
        writer=memo.status_writer,
        capturer=memo.capturer,
        version=memo.version,
        pods_in_namespace=lambda: pod_cache.pods(namespace),
        pods_version=lambda: pod_cache.version(namespace),
        post_event=lambda type, reason, message: kopf.event(
            body, type=type, reason=reason, message=message
        ),
        spikes=SpikeWatcher(memo.source_factory),
        registry=memo.sessions,
        armer=Armer(namespace, name, memo.workloads, memo.capturer.fetcher, memo.capturer.router),
        outputs=SessionOutputs(
            namespace,
            name,
            memo.config.artifact_root,
            memo.secret_reader.read,
            spool_max_bytes=memo.config.spool_max_bytes,
        ),
        port_forward_missing=memo.port_forward.missing_rights,
    )
    memo.metrics.sessions.inc()
    await pod_cache.acquire(namespace)
    try:
        while not stopped:
            try:
                captured = await worker.step(
                    spec, meta, status, datetime.datetime.now(datetime.UTC)
                )
            # The API server is away: the loop (and what it remembers) waits for it, not kopf's
            # restart of a failed daemon a minute later.
            except ApiUnavailableError as error:
                logger.warning("The session waits for the API server: %s", error)
                captured = False
            if not captured:
                await worker.idle(memo.config.poll_seconds)
    except SessionGoneError:
        logger.info("The session was deleted; its daemon stops.")
    finally:
        pod_cache.release(namespace)
        worker.unregister()
        memo.metrics.sessions.dec()


@kopf.on.delete("spikeprof.io", "v1alpha1", "profilingsessions")
async def disarm_session(
    name: str, namespace: str | None, status: kopf.Status, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Before a session goes, the workloads it armed get their pod templates back."""
    namespace = namespace or ""
    recorded = [parse_workload(r, namespace) for r in status.get("armedWorkloads") or ()]
    if not recorded:
        return

    try:
        armer = Armer(namespace, name, memo.workloads, memo.capturer.fetcher, memo.capturer.router)
        restored = await armer.disarm(recorded)
    except KubeError as error:
        raise kopf.TemporaryError(
            f"Could not restore the armed workloads: {error}", delay=10
        ) from None
    logger.info("Restored %s as they were; disarmed %s.", restored, recorded)
