"""Guards: per-pod cooldown, the session's capture budget, and expiry."""

from __future__ import annotations

import datetime

from spikeprof.core.guards import apply_guards, expired
from spikeprof.core.rules import Firing

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)


def firing(pod: str) -> Firing:
    return Firing("cpu-hot", pod, "cpu", 0.9, 0.8, NOW.timestamp(), "cpu 900m above 800m")


def test_cooldown_holds_back_a_pod_captured_recently_but_not_the_others() -> None:
    decision = apply_guards(
        [firing("a"), firing("b")],
        now=NOW,
        last_capture_by_pod={"a": NOW - datetime.timedelta(minutes=4)},
        cooldown=600,
        captures_so_far=1,
        max_captures=None,
        is_expired=False,
    )
    assert [f.pod for f in decision.allowed] == ["b"]
    (held,) = decision.suppressed
    assert (held.pod, held.guard) == ("a", "Cooldown")
    assert held.message == "pod a was captured 4m ago; its cooldown of 10m has 6m left"


def test_cooldown_ends() -> None:
    decision = apply_guards(
        [firing("a")],
        now=NOW,
        last_capture_by_pod={"a": NOW - datetime.timedelta(minutes=11)},
        cooldown=600,
        captures_so_far=1,
        max_captures=None,
        is_expired=False,
    )
    assert [f.pod for f in decision.allowed] == ["a"]


def test_max_captures_holds_every_pod_once_reached() -> None:
    decision = apply_guards(
        [firing("a"), firing("b")],
        now=NOW,
        last_capture_by_pod={},
        cooldown=0,
        captures_so_far=3,
        max_captures=3,
        is_expired=False,
    )
    assert decision.allowed == ()
    assert {s.guard for s in decision.suppressed} == {"MaxCaptures"}
    assert decision.suppressed[0].message == "the session already took maxCaptures (3) captures"


def test_a_session_expires_after_its_age() -> None:
    created = NOW - datetime.timedelta(hours=2)
    assert not expired(created, None, NOW)
    assert not expired(created, 3 * 3600, NOW)
    assert expired(created, 3600, NOW)
