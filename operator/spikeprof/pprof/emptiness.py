"""Why a profile that was taken has nothing in it.

An empty profile is a fact about the program, not a failed capture: Go records block and mutex
events only once the program asks for them (daprd never does), and a CPU profile of an idle
process has no samples. Saying so spares people from reading an empty top list as a bug.
"""

from __future__ import annotations

from spikeprof.pprof.profile import Profile

_NOT_RECORDED = (
    "0 samples: the program does not record {what} unless it calls {call}, "
    "which it most likely never did"
)

_REASONS = {
    "block": _NOT_RECORDED.format(
        what="block events", call="runtime.SetBlockProfileRate with a positive rate"
    ),
    "mutex": _NOT_RECORDED.format(
        what="mutex contention", call="runtime.SetMutexProfileFraction with a positive fraction"
    ),
    "heap": "0 samples: no allocation was sampled (runtime.MemProfileRate may be 0)",
    "allocs": "0 samples: no allocation was sampled (runtime.MemProfileRate may be 0)",
}


def is_empty(profile: Profile) -> bool:
    """True when no sample carries a non-zero value: nothing to show in any sample type."""
    return not profile.sample_values.any()


def empty_reason(profile_type: str, profile: Profile, seconds: float | None) -> str | None:
    """The likely reason a profile of this type is empty, or None when it has samples."""
    if not is_empty(profile):
        return None
    if profile_type == "cpu":
        duration = seconds if seconds is not None else profile.duration_nanos / 1e9
        return f"0 samples: no CPU time was spent during the {duration:g} s profile"
    return _REASONS.get(profile_type, "0 samples: the program recorded nothing of this kind")
