"""An empty profile says why it is empty: a fact about the program, not a failed capture."""

from __future__ import annotations

import pytest

from spikeprof.pprof.emptiness import empty_reason
from spikeprof.pprof.profile import decode
from tests.unit.pprof_proto import ProfileBuilder, call_chain


def profile(type_: str, unit: str, *values: int) -> ProfileBuilder:
    builder = call_chain(ProfileBuilder().sample_type(type_, unit), ["main.main", "main.work"])
    for value in values:
        builder.sample([2, 1], [value])
    return builder


def test_block_and_mutex_without_samples_name_the_call_that_turns_recording_on() -> None:
    block = decode(profile("contentions", "count").body())
    mutex = decode(profile("contentions", "count").body())
    assert "runtime.SetBlockProfileRate" in (empty_reason("block", block, None) or "")
    assert "runtime.SetMutexProfileFraction" in (empty_reason("mutex", mutex, None) or "")


def test_an_idle_cpu_profile_says_no_cpu_time_was_spent_in_its_seconds() -> None:
    cpu = decode(profile("cpu", "nanoseconds").scalar_field(10, 3_000_000_000).body())
    assert empty_reason("cpu", cpu, 3.0) == (
        "0 samples: no CPU time was spent during the 3 s profile"
    )
    assert empty_reason("cpu", cpu, None) == (
        "0 samples: no CPU time was spent during the 3 s profile"
    )


def test_samples_whose_values_are_all_zero_count_as_empty() -> None:
    assert empty_reason("heap", decode(profile("inuse_space", "bytes", 0, 0).body()), None)


@pytest.mark.parametrize("type_", ["cpu", "heap", "block", "mutex", "goroutine"])
def test_a_profile_with_samples_has_no_empty_reason(type_: str) -> None:
    assert empty_reason(type_, decode(profile("value", "count", 3).body()), 1.0) is None
