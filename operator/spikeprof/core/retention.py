"""Which stored captures a session's retention policy lets go: too old, or beyond the newest N.

A capture here is one capture id of one session, with every pod it covered: the pods profiled
at the same moment are one picture of one incident, so they are kept or deleted together (keeping
two of three pods of a spike would leave a picture nobody can read whole). `maxCount` therefore
counts capture ids per session, not pod directories, like the session's own `maxCaptures`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass

from spikeprof.core.artifact_key import ArtifactKey

# `20261126T010457.951Z-immediate`: what core.planner.capture_id writes.
_CAPTURE_ID_TIME = re.compile(r"^(\d{8}T\d{6})\.(\d{3})Z(?:-|$)")


@dataclass(frozen=True)
class RetentionPolicy:
    """A session's `output.retention`; None means no limit of that kind."""

    max_age_seconds: float | None = None
    """Captures older than this many seconds (from their capture time) are deleted."""
    max_count: int | None = None
    """Only the newest this many captures (capture ids) of each session are kept."""

    def __post_init__(self) -> None:
        if self.max_age_seconds is not None and self.max_age_seconds <= 0:
            raise ValueError(f"maxAge must be positive, not {self.max_age_seconds} seconds")
        if self.max_count is not None and self.max_count < 0:
            raise ValueError(f"maxCount must be 0 or more, not {self.max_count}")


@dataclass(frozen=True)
class StoredCapture:
    """One pod's artifacts of one capture, as found in a store, and when it was taken."""

    key: ArtifactKey
    time: datetime.datetime


def capture_time(capture_id: str) -> datetime.datetime | None:
    """The UTC time a capture id starts with, or None for an id this operator did not write."""
    match = _CAPTURE_ID_TIME.match(capture_id)
    if match is None:
        return None
    try:
        moment = datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
    except ValueError:
        # Digits in the right places that are still not a date (month 13, say).
        return None
    return moment.replace(microsecond=int(match.group(2)) * 1000, tzinfo=datetime.UTC)


def captures_to_delete(
    captures: Iterable[StoredCapture],
    policy: RetentionPolicy,
    now: datetime.datetime,
) -> tuple[ArtifactKey, ...]:
    """The pod directories to delete, oldest first; every pod of a deleted capture id is in it."""
    # Group pods by (namespace, session, capture id); a capture's time is its newest pod's, so
    # a capture is never judged older than any part of it.
    grouped: dict[tuple[str, str, str], list[StoredCapture]] = {}
    for capture in captures:
        k = capture.key
        grouped.setdefault((k.namespace, k.session, k.capture_id), []).append(capture)

    by_session: dict[tuple[str, str], list[tuple[datetime.datetime, str]]] = {}
    for (namespace, session, capture_id), pods in grouped.items():
        newest = max(p.time for p in pods)
        by_session.setdefault((namespace, session), []).append((newest, capture_id))

    doomed: set[tuple[str, str, str]] = set()
    for (namespace, session), entries in by_session.items():
        # Newest first; the capture id breaks ties so that the answer never depends on order.
        entries.sort(reverse=True)
        for rank, (moment, capture_id) in enumerate(entries):
            too_many = policy.max_count is not None and rank >= policy.max_count
            too_old = (
                policy.max_age_seconds is not None
                and (now - moment).total_seconds() > policy.max_age_seconds
            )
            if too_many or too_old:
                doomed.add((namespace, session, capture_id))

    deleted = [capture for group, pods in grouped.items() if group in doomed for capture in pods]
    deleted.sort(key=lambda c: (c.time, c.key.parts))
    return tuple(c.key for c in deleted)
