"""Leader election's decisions on a Lease: expiry on the observer's own clock, who may take it."""

from __future__ import annotations

import dataclasses
import datetime

from spikeprof.core.leases import (
    Lease,
    Sighting,
    acquired,
    expired,
    fence_deadline,
    may_acquire,
    observe,
    released,
)

WALL = datetime.datetime(2026, 12, 2, 2, 0, 0, tzinfo=datetime.UTC)


def held_by(holder: str, renewed: datetime.datetime = WALL) -> Lease:
    return Lease(
        name="spikeprof",
        holder=holder,
        duration_seconds=15,
        renew_time=renewed,
        acquire_time=WALL,
        transitions=2,
        resource_version="7",
    )


def test_a_lease_expires_a_whole_duration_after_its_record_was_first_seen() -> None:
    seen = observe(None, held_by("a"), now=100.0)
    assert not expired(seen, 114.9)
    assert expired(seen, 115.0)


def test_reading_an_unchanged_record_again_does_not_make_its_holder_look_alive() -> None:
    first = observe(None, held_by("a"), now=100.0)
    again = observe(first, dataclasses.replace(held_by("a"), resource_version="8"), now=110.0)
    assert again.seen_at == 100.0
    assert expired(again, 115.0)


def test_a_renewal_restarts_the_wait_whatever_the_wall_clocks_say() -> None:
    first = observe(None, held_by("a"), now=100.0)
    # The holder's wall clock is an hour behind: only the change counts, never the time written.
    renewed = held_by("a", renewed=WALL - datetime.timedelta(hours=1))
    later = observe(first, renewed, now=112.0)
    assert later.seen_at == 112.0
    assert not expired(later, 120.0)


def test_a_released_or_absent_lease_may_be_taken_at_once() -> None:
    free = observe(None, released(held_by("a"), WALL), now=100.0)
    assert expired(free, 100.0)
    assert may_acquire(free, "b", 100.0)
    assert may_acquire(None, "b", 100.0)


def test_only_the_holder_may_write_an_unexpired_lease() -> None:
    seen = Sighting(held_by("a"), seen_at=100.0)
    assert may_acquire(seen, "a", 101.0)
    assert not may_acquire(seen, "b", 101.0)
    assert may_acquire(seen, "b", 115.0)


def test_the_fence_closes_before_any_other_replica_may_take_over() -> None:
    # The renew request starts at 50; others see its result at 50 or later, and wait 15 s.
    assert fence_deadline(renew_started=50.0, renew_deadline=10.0) == 60.0
    seen_by_other = Sighting(held_by("a"), seen_at=50.0)
    assert not may_acquire(seen_by_other, "b", 60.0)


def test_taking_over_counts_a_transition_and_renewing_does_not() -> None:
    later = WALL + datetime.timedelta(seconds=30)
    taken = acquired(
        held_by("a"), name="spikeprof", identity="b", duration_seconds=15, wall_now=later
    )
    assert (taken.holder, taken.transitions, taken.acquire_time, taken.renew_time) == (
        "b",
        3,
        later,
        later,
    )
    assert taken.resource_version == "7"  # the update names the version it was decided on
    renewed = acquired(taken, name="spikeprof", identity="b", duration_seconds=15, wall_now=WALL)
    assert (renewed.transitions, renewed.acquire_time, renewed.renew_time) == (3, later, WALL)


def test_a_new_lease_starts_without_transitions() -> None:
    new = acquired(None, name="spikeprof", identity="a", duration_seconds=15, wall_now=WALL)
    assert (new.name, new.holder, new.transitions, new.resource_version) == (
        "spikeprof",
        "a",
        0,
        None,
    )
    again = acquired(
        released(new, WALL), name="x", identity="b", duration_seconds=15, wall_now=WALL
    )
    assert again.transitions == 1  # as client-go counts: the holder changed, from nobody


def test_releasing_leaves_no_holder_and_a_one_second_lease_as_client_go_does() -> None:
    free = released(held_by("a"), WALL)
    assert (free.holder, free.held, free.duration_seconds, free.transitions) == (None, False, 1, 2)
