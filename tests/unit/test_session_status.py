"""The typed session status: the CRD's status schema, parsed and rendered without loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from spikeprof.core.session_status import SessionStatus

CRD = Path(__file__).resolve().parents[2] / "crds" / "spikeprof.io_profilingsessions.yaml"

CAPTURE = {
    "id": "20261126T010000.000Z-alert",
    "time": "2026-11-26T01:00:31Z",
    "trigger": "alert",
    "reason": "alert HighCPU fired (1 notification(s))",
    "result": "Succeeded",
    "pods": 1,
    "profiles": {"succeeded": 2, "failed": 0},
    "artifacts": ["shop/checkout/web-1/20261126T010000.000Z-alert"],
    "message": "Capture took 2 profile(s) from 1 pod(s).",
}
FULL: dict[str, Any] = {
    "phase": "Armed",
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "SpecAccepted",
            "message": "The session is valid and watched for triggers.",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-11-26T00:59:00Z",
        }
    ],
    "targets": {"matched": 2, "reachable": 1, "summary": "1/2"},
    "captures": {"total": 4, "failed": 1, "profiles": 7, "profilesFailed": 1},
    "podLastCaptured": {"web-1": "2026-11-26T01:00:00Z"},
    "suppressed": {
        "total": 2,
        "last": {
            "time": "2026-11-26T01:02:00Z",
            "pod": "web-1",
            "rule": "alert HighCPU",
            "guard": "Cooldown",
            "message": "pod web-1 was captured 2m ago",
        },
    },
    "armedWorkloads": ["Deployment/web"],
    "baselineCapture": "20261126T005900.000Z-baseline",
    "pendingAlerts": {
        "abc@2026-11-26T01:03:00Z": {
            "alert": "HighCPU",
            "pods": ["web-1"],
            "receivedAt": "2026-11-26T01:03:01Z",
            "startsAt": "2026-11-26T01:03:00Z",
        }
    },
    "alertsHandled": ["abc@2026-11-26T01:00:00Z"],
    "captureNowHandled": "2",
    "immediateDone": True,
    "pendingCapture": {
        "id": "20261126T010300.000Z-alert",
        "trigger": "alert",
        "reason": "alert HighCPU fired (1 notification(s))",
        "requestedAt": "2026-11-26T01:03:00Z",
        "pods": ["web-1"],
        "alertKeys": ["abc@2026-11-26T01:03:00Z"],
    },
    "lastCapture": CAPTURE,
    "recentCaptures": [CAPTURE],
    "restartsSeen": {"0b5c-uid/app": 2},
    "restarts": [
        {
            "time": "2026-11-26T01:04:00Z",
            "pod": "web-1",
            "podUID": "0b5c-uid",
            "container": "app",
            "restartCount": 2,
            "reason": "OOMKilled",
            "exitCode": 137,
            "finishedAt": "2026-11-26T01:03:58Z",
            "previousCapture": "20261126T010000.000Z-alert",
            "captureDue": "2026-11-26T01:04:29Z",
            "capture": "20261126T010430.000Z-restart",
        },
        {
            "time": "2026-11-26T00:50:00Z",
            "pod": "web-1",
            "podUID": "0b5c-uid",
            "container": "app",
            "restartCount": 1,
            "reason": "Error",
            "exitCode": 2,
            "finishedAt": "2026-11-26T00:49:59Z",
            "captureDue": "2026-11-26T00:50:30Z",
            "outcome": "Cooldown: pod web-1 was captured 1m ago",
        },
    ],
}


def test_every_field_of_the_crd_status_schema_is_parsed_and_rendered_as_it_was() -> None:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(FULL) == set(schema["properties"])
    status = SessionStatus.parse(FULL)
    assert status.render() == FULL
    assert status.patch_to(SessionStatus.parse(FULL)) == {}


def test_an_empty_status_stays_empty() -> None:
    assert SessionStatus.parse({}).render() == {}
    assert SessionStatus.parse({}).progress().pending is None


def test_the_status_says_what_has_already_been_acted_on() -> None:
    status = SessionStatus.parse(FULL)
    progress = status.progress()
    assert progress.pending is not None and progress.pending.alert_keys == (
        "abc@2026-11-26T01:03:00Z",
    )
    assert (progress.immediate_done, progress.capture_now_handled, progress.baseline_done) == (
        True,
        "2",
        True,
    )
    assert status.captures_so_far() == 4
    assert list(status.last_captured()) == ["web-1"]
