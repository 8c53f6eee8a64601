"""Which capture runs next: pending first, then immediate, then each new capture-now value."""

from __future__ import annotations

import datetime

from spikeprof.core.planner import (
    CAPTURE_NOW_ANNOTATION,
    CaptureRequest,
    Progress,
    capture_id,
    next_capture,
    progress_after,
)
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import SessionSpec, parse_spec

NOW = datetime.datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=datetime.UTC)
FRESH = Progress(immediate_done=False, capture_now_handled=None, pending=None)


def session(immediate: bool) -> SessionSpec:
    return parse_spec(
        {
            "selector": {"matchLabels": {"app": "web"}},
            "profiles": [{"type": "heap"}],
            "trigger": {"immediate": immediate},
            "output": {"volume": {}},
        }
    )


def test_capture_ids_sort_by_time_and_name_the_trigger() -> None:
    assert capture_id(NOW, "immediate") == "20261126T010203.456Z-immediate"
    later = capture_id(NOW + datetime.timedelta(milliseconds=1), "capture-now")
    assert later > capture_id(NOW, "capture-now")


def test_immediate_captures_once() -> None:
    spec = session(immediate=True)
    request = next_capture(spec, {}, FRESH, NOW)
    assert request is not None and request.trigger == "immediate"
    done = progress_after(FRESH, request)
    assert next_capture(spec, {}, done, NOW) is None


def test_capture_now_captures_once_per_new_value() -> None:
    spec = session(immediate=False)
    assert next_capture(spec, {}, FRESH, NOW) is None
    annotations = {CAPTURE_NOW_ANNOTATION: "1"}
    request = next_capture(spec, annotations, FRESH, NOW)
    assert request is not None
    assert (request.trigger, request.token) == ("capture-now", "1")
    assert request.reason == "annotation spikeprof.io/capture-now=1"
    done = progress_after(FRESH, request)
    assert next_capture(spec, annotations, done, NOW) is None
    again = next_capture(spec, {CAPTURE_NOW_ANNOTATION: "2"}, done, NOW)
    assert again is not None and again.token == "2"


def test_a_pending_capture_is_resumed_under_its_own_id() -> None:
    pending = CaptureRequest("20261126T000000.000Z-immediate", "immediate", "r", NOW)
    status = {"pendingCapture": pending.to_status(), "immediateDone": False}
    progress = SessionStatus.parse(status).progress()
    later = NOW + datetime.timedelta(minutes=5)
    request = next_capture(session(immediate=True), {}, progress, later)
    assert request is not None
    assert request.id == pending.id
    assert request.requested_at == NOW.replace(microsecond=0)
