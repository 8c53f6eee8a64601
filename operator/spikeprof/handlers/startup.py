"""Start-up and clean-up: clients and services go into kopf's memo, never into globals."""

from __future__ import annotations

import gc
import logging
from typing import Any

import kopf

from spikeprof import __version__
from spikeprof.adapters.artifact_reader import VolumeArtifacts
from spikeprof.adapters.kube import Identity
from spikeprof.handlers.memo import factory_of, keep, keep_ui, ui_of
from spikeprof.services.factory import Factory
from spikeprof.settings import Settings
from spikeprof.ui.server import UiServer, build_app

# kopf's retries of failed API requests, watches included (seconds between attempts). Its
# default grows to 21 s, so a session created after an outage waited up to 30 s to be seen; at
# most 3 s apart, and for about ten minutes before a request gives up (a watch then starts
# over at once), the operator follows the API server back within seconds.
API_RETRY_BACKOFFS = (0.5, 1.0, 2.0) + (3.0,) * 200
# Connecting to the API server takes milliseconds; one that does not answer in this time is
# away (the default waits for the whole request timeout of 5 minutes).
API_CONNECT_SECONDS = 10.0
# How long kopf waits for a deleted session's daemon to end, once when asked to stop and once
# when cancelled, before it falls back to looking again at the cancellation timeout. It holds up
# only that session's own handling.
DAEMON_EXIT_WAIT_SECONDS = 1.0


@kopf.on.startup()
async def start(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    config = Settings.from_env()
    configure_kopf(settings, config.replica_identity())
    # One line per profile request is too much at INFO; failures are reported by the capture.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    keep(memo, await Factory.start(config))
    if config.ui_port:
        # The captures UI over the operator's own volume, read-only, on its own port.
        app = build_app(VolumeArtifacts(config.artifact_root), token=config.ui_token())
        ui = UiServer(app, address=config.ui_address, port=config.ui_port)
        await ui.start()
        keep_ui(memo, ui)
    logger.info(
        "spikeprof %s started as %s; artifacts go to %s; metrics on :%s; alerts on :%s.",
        __version__,
        config.replica_identity(),
        config.artifact_root,
        config.metrics_port,
        config.alerts_port,
    )
    # What is loaded by now (kopf, the clients, ~100k objects) lives as long as the process:
    # frozen, it is out of the collector's way, and a full collection walks only what came
    # later (a share of every evaluation cycle at 1,000 pods, bench/evaluation_cost.py).
    gc.freeze()


def configure_kopf(settings: kopf.OperatorSettings, identity: str) -> None:
    # kopf's bookkeeping lives in our own annotations, and nothing of it in .status, whose
    # schema is strict so that `kubectl explain` describes every field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="spikeprof.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="spikeprof.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "spikeprof.io/finalizer"
    # A session's events are sentences written for people, posted by adapters.events (fenced
    # when sent); kopf posts only its own warnings (a handler that failed), not log lines.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "spikeprof"
    # Which replica said it (SPIKEPROF_IDENTITY, the pod's name in the chart).
    settings.posting.reporting_instance = identity
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = API_RETRY_BACKOFFS
    settings.networking.connect_timeout = API_CONNECT_SECONDS
    # kopf's warnings written during an API outage are posted once it is back.
    settings.posting.default_backoffs = API_RETRY_BACKOFFS
    # When a session is deleted, kopf stops its daemon and cancels it at once (no cancellation
    # backoff), but gives it only a few zero-time loop cycles to end: a daemon that needs an
    # await or two to unwind (a capture's requests, the status outbox) is looked at again only
    # at its cancellation timeout, so the finalizer stayed 10 s or more after every deletion of
    # a served session (kubectl spikeprof's Ctrl-C waited that long). Waiting up to this long
    # for it to end lets the session go as soon as it has; past it, the 10 s check remains.
    settings.background.instant_exit_timeout = DAEMON_EXIT_WAIT_SECONDS
    # Serve exactly the namespaces and the CRD present at start, instead of watching all CRDs
    # and namespaces for changes: that would need cluster-wide read rights the work does not.
    settings.scanning.disabled = True


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf logs in as spikeprof's own client does: one identity for all of the operator.

    Without this, kopf would look for KUBECONFIG and ~/.kube/config on its own, and could watch
    another cluster than the one spikeprof writes to (or none, with only SPIKEPROF_KUBECONFIG).
    kopf calls it after start-up, and again whenever the API server refuses the credentials.
    """
    return _connection_info(await factory_of(memo).identity())


def _connection_info(found: Identity) -> kopf.ConnectionInfo:
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
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if (ui := ui_of(memo)) is not None:
        await ui.stop()
    await factory_of(memo).close()
