"""One daemon per ProfilingSession; the loop's logic lives in services.session."""

from __future__ import annotations

from typing import Any

import kopf

from spikeprof.adapters.events import involved_object
from spikeprof.adapters.kube import KubeError
from spikeprof.core.arming import parse_workload
from spikeprof.core.session_status import SessionStatus
from spikeprof.handlers.memo import factory_of
from spikeprof.services.alerts import listens_for_alerts
from spikeprof.services.ownership import (
    WAIT_SECONDS,
    NotOwnerError,
    StopFlag,
    serve_while_owned,
)


@kopf.daemon("spikeprof.io", "v1alpha1", "profilingsessions", cancellation_timeout=10.0)
async def serve_session(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    factory = factory_of(memo)

    namespace = namespace or ""  # sessions are namespaced; kopf types it for cluster kinds too

    involved = involved_object(body)

    def post_event(type: str, reason: str, message: str) -> None:
        # Fenced like status writes, when sent: a replica that lost the namespace tells nothing.
        factory.events.post(
            involved, type, reason, message, lambda: factory.ownership.owns(namespace)
        )

    async def serve(stop: StopFlag) -> None:
        async with factory.session(namespace, name, post_event) as worker:
            await worker.serve(stop, spec, meta, status, factory.settings.poll_seconds, logger)

    # Every replica runs this daemon; only the one that owns the namespace serves it. Until it
    # is served, alerts for it wait (the receiver is not ready), so none is answered unseen.
    factory.sessions.expect(namespace, name, lambda: listens_for_alerts(spec))
    # While another shard serves it, an alert sent here is recorded in its status all the same.
    factory.sessions.stand_by(namespace, name, spec, status)
    try:
        await serve_while_owned(factory.ownership, namespace, stopped, serve)
    finally:
        factory.sessions.forget(namespace, name)


@kopf.on.delete("spikeprof.io", "v1alpha1", "profilingsessions")
async def disarm_session(
    name: str,
    namespace: str | None,
    status: kopf.Status,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Before a session goes, the workloads it armed get their pod templates back."""
    namespace = namespace or ""
    armed = SessionStatus.parse(status).armed_workloads or ()
    recorded = [parse_workload(r, namespace) for r in armed]
    if not recorded:
        return
    factory = factory_of(memo)
    # Another replica owns the namespace: it disarms. Waiting (instead of failing) keeps kopf
    # from recording retries in the annotations that replica's kopf reads too.
    while True:
        while not factory.ownership.owns(namespace):
            if not await factory.session_exists(namespace, name):
                return  # the owner restored the workloads and the session is gone
            await factory.ownership.changed(WAIT_SECONDS)
        try:
            restored = await factory.armer(namespace, name).disarm(recorded)
        # Lost the namespace meanwhile (its patches are fenced): its new owner disarms.
        except NotOwnerError:
            continue
        # Retried by kopf: the session keeps its finalizer until its workloads are restored.
        except KubeError as error:
            raise kopf.TemporaryError(
                f"Could not restore the armed workloads: {error}", delay=10
            ) from None
        logger.info("Restored %s as they were; disarmed %s.", restored, recorded)
        return
