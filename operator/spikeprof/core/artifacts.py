"""Where a capture's artifacts go and what metadata.json says about them."""

from __future__ import annotations

import datetime
from typing import Any

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.endpoints import Endpoint
from spikeprof.core.planner import CaptureRequest, format_time
from spikeprof.core.pods import PodInfo
from spikeprof.core.restarts import restart_context
from spikeprof.core.results import ProfileOutcome
from spikeprof.core.spec import ProfileRequest

METADATA_FILE = "metadata.json"
METADATA_SCHEMA = "spikeprof.io/capture-metadata/v1"


def build_metadata(
    *,
    key: ArtifactKey,
    request: CaptureRequest,
    pod: PodInfo,
    endpoint: Endpoint,
    requests: tuple[ProfileRequest, ...],
    outcomes: tuple[ProfileOutcome, ...],
    finished_at: datetime.datetime,
    operator_version: str,
    alerts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """What metadata.json says of one pod's capture; `alerts`: the keys (fingerprint@startsAt)
    of the alerts that asked for this pod, when alerts triggered it."""
    by_type = {o.type: o for o in outcomes}
    profiles = []
    for req in requests:
        outcome = by_type[req.type]
        entry: dict[str, Any] = {"parameters": req.parameters()}
        if outcome.failure is None:
            entry.update(file=outcome.file, bytes=outcome.bytes, sha256=outcome.sha256)
            if outcome.summary is not None:
                entry["summary"] = outcome.summary
            if outcome.empty_reason is not None:
                entry["empty"] = {"samples": 0, "reason": outcome.empty_reason}
            if outcome.flamegraph is not None:
                entry["flamegraph"] = outcome.flamegraph
            if outcome.analysis_error is not None:
                entry["analysisError"] = outcome.analysis_error
            if outcome.versus_baseline is not None:
                entry["versusBaseline"] = outcome.versus_baseline
            if outcome.growth is not None:
                entry["growth"] = outcome.growth
        else:
            entry.update(
                failed={"reason": str(outcome.failure.reason), "message": outcome.failure.message}
            )
        entry["secondsTaken"] = round(outcome.seconds_taken, 3)
        profiles.append(entry)
    return {
        "schema": METADATA_SCHEMA,
        "captureId": request.id,
        "namespace": key.namespace,
        "session": key.session,
        "pod": pod.name,
        "podUID": pod.uid,
        "node": pod.node,
        "podIP": pod.ip,
        "container": endpoint.container,
        "endpoint": endpoint.base_url,
        "access": endpoint.access,
        "trigger": {
            "type": request.trigger,
            "reason": request.reason,
            **({"alerts": list(alerts)} if alerts else {}),
        },
        "requestedAt": format_time(request.requested_at),
        "finishedAt": format_time(finished_at),
        "profiles": profiles,
        "operatorVersion": operator_version,
        # trigger restart: the restart, and the pod's last capture before it (for captures diff)
        **restart_context(request, pod.name),
    }
