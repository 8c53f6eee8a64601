"""Retention: which stored captures a session's maxAge and maxCount let go."""

from __future__ import annotations

import datetime

import pytest

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.planner import capture_id
from spikeprof.core.retention import (
    RetentionPolicy,
    StoredCapture,
    capture_time,
    captures_to_delete,
)

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
HOUR = 3600.0


def stored(
    hours_ago: float,
    pod: str = "web-1",
    session: str = "checkout",
    namespace: str = "shop",
    trigger: str = "threshold",
) -> StoredCapture:
    moment = NOW - datetime.timedelta(hours=hours_ago)
    key = ArtifactKey(namespace, session, pod, capture_id(moment, trigger))
    return StoredCapture(key, moment)


def test_capture_time_reads_the_time_a_capture_id_starts_with() -> None:
    assert capture_time("20261126T010457.951Z-immediate") == datetime.datetime(
        2026, 11, 26, 1, 4, 57, 951000, tzinfo=datetime.UTC
    )


def test_capture_time_round_trips_the_ids_the_planner_writes() -> None:
    moment = datetime.datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=datetime.UTC)
    assert capture_time(capture_id(moment, "alert")) == moment


@pytest.mark.parametrize(
    "foreign_id",
    ["manual-upload", "20261326T010457.951Z-immediate", "20261126T010457Z-immediate", ""],
)
def test_capture_time_is_none_for_an_id_the_operator_did_not_write(foreign_id: str) -> None:
    assert capture_time(foreign_id) is None


def test_no_limits_delete_nothing() -> None:
    captures = [stored(1000), stored(1)]
    assert captures_to_delete(captures, RetentionPolicy(), NOW) == ()


def test_max_age_deletes_the_captures_older_than_it_and_keeps_the_rest() -> None:
    old, edge, young = stored(169), stored(168), stored(1)
    doomed = captures_to_delete(
        [young, old, edge], RetentionPolicy(max_age_seconds=168 * HOUR), NOW
    )
    # Exactly maxAge old is still kept: "older than" is strict.
    assert doomed == (old.key,)


def test_max_count_keeps_the_newest_captures_of_each_session() -> None:
    shop = [stored(h) for h in (5, 1, 3, 2, 4)]
    other = [stored(h, session="search") for h in (9, 8)]
    doomed = captures_to_delete([*shop, *other], RetentionPolicy(max_count=3), NOW)
    assert doomed == (shop[0].key, shop[4].key)  # 5 h and 4 h ago, oldest first


def test_max_count_counts_capture_ids_and_deletes_every_pod_of_a_capture_together() -> None:
    old_a, old_b = stored(2, pod="web-1"), stored(2, pod="web-2")
    new_a, new_b = stored(1, pod="web-1"), stored(1, pod="web-2")
    doomed = captures_to_delete([new_a, old_b, new_b, old_a], RetentionPolicy(max_count=1), NOW)
    assert doomed == (old_a.key, old_b.key)


def test_sessions_of_the_same_name_in_two_namespaces_are_counted_apart() -> None:
    shop = stored(2, namespace="shop")
    staging = stored(1, namespace="staging")
    assert captures_to_delete([shop, staging], RetentionPolicy(max_count=1), NOW) == ()


def test_max_count_zero_deletes_everything() -> None:
    captures = [stored(2), stored(1)]
    doomed = captures_to_delete(captures, RetentionPolicy(max_count=0), NOW)
    assert doomed == (captures[0].key, captures[1].key)


def test_either_limit_is_enough_to_delete_a_capture() -> None:
    ancient, recent_but_extra, newest = stored(500), stored(2), stored(1)
    policy = RetentionPolicy(max_age_seconds=100 * HOUR, max_count=1)
    doomed = captures_to_delete([newest, recent_but_extra, ancient], policy, NOW)
    assert doomed == (ancient.key, recent_but_extra.key)


def test_a_capture_is_as_young_as_its_youngest_pod() -> None:
    # A pod's copy with a later time (e.g. found by last-modified) keeps the whole capture.
    first = stored(10, pod="web-1")
    second = StoredCapture(
        ArtifactKey("shop", "checkout", "web-2", first.key.capture_id),
        NOW - datetime.timedelta(hours=1),
    )
    assert captures_to_delete([first, second], RetentionPolicy(max_age_seconds=5 * HOUR), NOW) == ()


def test_captures_of_the_same_moment_are_ranked_by_id_so_the_answer_never_depends_on_order() -> (
    None
):
    a = stored(1, trigger="alert")
    b = stored(1, trigger="threshold")
    policy = RetentionPolicy(max_count=1)
    assert captures_to_delete([a, b], policy, NOW) == captures_to_delete([b, a], policy, NOW)
    assert captures_to_delete([a, b], policy, NOW) == (a.key,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_age_seconds": 0}, "maxAge must be positive, not 0 seconds"),
        ({"max_count": -1}, "maxCount must be 0 or more, not -1"),
    ],
)
def test_a_policy_that_means_nothing_is_refused_with_a_sentence(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]
