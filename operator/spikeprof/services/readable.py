"""What a kept profile becomes for people: its summary for metadata.json and its flame graph
pages, written next to it in the staging directory.

These run in the analysis worker processes (services.analysis), so this module imports only
what they need: the pprof package and the staging directory, not the operator's clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeprof.adapters.volume import StagedCapture
from spikeprof.core.spec import ProfileRequest
from spikeprof.pprof.diff import ProfileMismatchError, diff_profiles
from spikeprof.pprof.diff_page import render_diff_flamegraph
from spikeprof.pprof.emptiness import empty_reason
from spikeprof.pprof.flamegraph_page import render_flamegraph
from spikeprof.pprof.growth import GROWTH_SAMPLE_TYPE, heap_growth
from spikeprof.pprof.profile import Profile, ProfileDecodeError, decode_file
from spikeprof.pprof.summary import summarize

SUMMARY_TOP = 20  # functions per sample type kept in metadata.json
FLAMEGRAPH_TYPES = frozenset({"cpu", "heap", "allocs"})  # where a flame graph answers a question


@dataclass(frozen=True)
class Readable:
    summary: dict[str, Any] | None = None
    empty_reason: str | None = None  # why the profile has no samples, when it has none
    flamegraph: str | None = None
    error: str | None = None
    versus_baseline: dict[str, Any] | None = None  # top gainers and the diff flame graph


def make_readable(
    staged: StagedCapture, request: ProfileRequest, title: str, baseline: Path | None = None
) -> Readable:
    """Top functions for metadata.json and a flame graph page, next to a kept profile.

    Runs where the Capturer's `analysis` puts it (a worker process, or a thread). A profile
    that decodes badly keeps its raw file; only the summary is missing, and metadata.json says
    why.
    """
    if request.type == "trace":
        return Readable()  # an execution trace is read with go tool trace, not summarised
    path = staged.staging / request.file_name
    try:
        profile = decode_file(path)
        summary = summarize(profile).to_json(top=SUMMARY_TOP)
    except ProfileDecodeError as error:
        return Readable(error=str(error))
    empty = empty_reason(request.type, profile, request.seconds)
    if request.type not in FLAMEGRAPH_TYPES:
        return Readable(summary=summary, empty_reason=empty)
    page = f"{request.type}.flamegraph.html"
    try:
        staged.write_text(page, render_flamegraph(profile, title=title))
    except OSError as error:
        return Readable(
            summary=summary, empty_reason=empty, error=f"writing the flame graph failed: {error}"
        )
    versus = versus_baseline(staged, request, profile, title, baseline)
    return Readable(summary=summary, empty_reason=empty, flamegraph=page, versus_baseline=versus)


def versus_baseline(
    staged: StagedCapture,
    request: ProfileRequest,
    profile: Profile,
    title: str,
    baseline: Path | None,
) -> dict[str, Any] | None:
    """What changed against the session's calm baseline of the same pod: top gainers, and a
    differential flame graph page. None when there is no baseline of this pod to compare with."""
    if baseline is None:
        return None
    try:
        base = decode_file(baseline)
        diff = diff_profiles(base, profile)
        page = f"{request.type}.vs-baseline.html"
        staged.write_text(page, render_diff_flamegraph(base, profile, title=f"{title} vs baseline"))
    except (ProfileDecodeError, ProfileMismatchError, OSError) as error:
        return {"baseline": baseline.parent.name, "error": str(error)}
    return {"baseline": baseline.parent.name, "flamegraph": page, **diff.to_json(top=SUMMARY_TOP)}


def growth_between(staged: StagedCapture, request: ProfileRequest, title: str) -> dict[str, Any]:
    """The leak pair's growth for metadata.json, and its differential flame graph page.

    Runs where the Capturer's `analysis` puts it (a worker process, or a thread). Profiles
    that cannot be read or compared keep their files; the growth then says why it has no
    figures.
    """
    page = f"{request.type}.growth.html"
    try:
        first = decode_file(staged.staging / request.file_name)
        second = decode_file(staged.staging / request.second_file_name)
        growth = heap_growth(first, second)
        staged.write_text(
            page,
            render_diff_flamegraph(
                first,
                second,
                sample_type=GROWTH_SAMPLE_TYPE,
                title=f"{title}: in-use bytes grown until the second profile",
                normalize=False,
            ),
        )
    except (ProfileDecodeError, ProfileMismatchError, OSError) as error:
        return {"error": str(error)}
    return {"flamegraph": page, **growth.to_json(top=SUMMARY_TOP)}
