"""Captures as a reader finds them: what metadata.json says, filtered, sorted, found by reference.

Pure: the adapters (adapters/artifact_reader.py) read the volume or the object store and hand
over each capture's metadata and files; this module decides what a capture is, which ones a
filter keeps, and which one a reference such as `shop/checkout-now/checkout-1/20261126T01` means.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.errors import SpikeprofError

_CAPTURE_ID_TIME = re.compile(r"^(\d{8}T\d{6})\.(\d{3})Z")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PPROF_FILE_SUFFIX = ".pb.gz"


class CatalogError(SpikeprofError, ValueError):
    """A reference, filter or metadata file that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One profile of a capture, as metadata.json lists it."""

    type: str
    file: str | None
    """None when the profile failed."""
    bytes: int
    sha256: str | None
    flamegraph: str | None
    summary: Mapping[str, Any] | None
    failure: str | None
    """"reason: message" when the profile failed."""
    empty_reason: str | None = None
    """Why the profile has no samples, when it was taken with none."""
    growth: Mapping[str, Any] | None = None
    """A leak pair's growth (metadata.json's profiles[].growth), or why its second is missing."""


@dataclass(frozen=True, slots=True)
class Capture:
    """One pod's artifacts of one capture."""

    key: ArtifactKey
    time: datetime.datetime
    """When the capture was requested (UTC)."""
    trigger: str
    reason: str
    node: str
    finished_at: str
    profiles: tuple[ProfileEntry, ...]
    files: Mapping[str, int]
    """Every file of the capture and its size in bytes, metadata.json included."""
    metadata: Mapping[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def profile(self, type_: str) -> ProfileEntry | None:
        return next((p for p in self.profiles if p.type == type_), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.key.relative_path,
            "namespace": self.key.namespace,
            "session": self.key.session,
            "pod": self.key.pod,
            "captureId": self.key.capture_id,
            "time": format_utc(self.time),
            "trigger": {"type": self.trigger, "reason": self.reason},
            "profiles": [
                {
                    "type": p.type,
                    "file": p.file,
                    "bytes": p.bytes,
                    "sha256": p.sha256,
                    **({"failed": p.failure} if p.failure else {}),
                }
                for p in self.profiles
            ],
            "bytes": self.total_bytes,
        }


def format_utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_of_capture_id(capture_id: str) -> datetime.datetime | None:
    match = _CAPTURE_ID_TIME.match(capture_id)
    if match is None:
        return None
    moment = datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
    return moment.replace(microsecond=int(match.group(2)) * 1000, tzinfo=datetime.UTC)


def _profile_entry(raw: Mapping[str, Any]) -> ProfileEntry:
    parameters = raw.get("parameters") or {}
    failed = raw.get("failed")
    failure = None
    if isinstance(failed, Mapping):
        failure = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
    summary = raw.get("summary")
    empty = raw.get("empty")
    empty_reason = empty.get("reason") if isinstance(empty, Mapping) else None
    return ProfileEntry(
        type=str(parameters.get("type", "unknown")),
        file=raw.get("file") if isinstance(raw.get("file"), str) else None,
        bytes=int(raw.get("bytes") or 0),
        sha256=raw.get("sha256") if isinstance(raw.get("sha256"), str) else None,
        flamegraph=raw.get("flamegraph") if isinstance(raw.get("flamegraph"), str) else None,
        summary=summary if isinstance(summary, Mapping) else None,
        failure=failure,
        empty_reason=str(empty_reason) if empty_reason is not None else None,
        growth=growth if isinstance(growth := raw.get("growth"), Mapping) else None,
    )


def capture_from_metadata(
    key: ArtifactKey,
    metadata: Mapping[str, Any],
    files: Mapping[str, int],
) -> Capture:
    """A capture from its directory's key, its metadata.json and its files' sizes.

    The key (where the files are) wins over what the metadata says, so a capture that was
    moved is still found where it is; the time is requestedAt, else the capture id's.
    """
    if not isinstance(metadata, Mapping):
        raise CatalogError(f"{key.relative_path}/metadata.json is not a JSON object")
    moment: datetime.datetime | None = None
    requested = metadata.get("requestedAt")
    if isinstance(requested, str):
        try:
            moment = datetime.datetime.fromisoformat(requested.replace("Z", "+00:00"))
        except ValueError:
            moment = None  # a hand-edited or foreign file: the capture id still has the time
    moment = moment or time_of_capture_id(key.capture_id)
    if moment is None:
        moment = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)
    trigger = metadata.get("trigger")
    trigger = trigger if isinstance(trigger, Mapping) else {}
    raw_profiles = metadata.get("profiles")
    profiles = tuple(
        _profile_entry(raw)
        for raw in (raw_profiles if isinstance(raw_profiles, list) else [])
        if isinstance(raw, Mapping)
    )
    return Capture(
        key=key,
        time=moment.astimezone(datetime.UTC),
        trigger=str(trigger.get("type", "")),
        reason=str(trigger.get("reason", "")),
        node=str(metadata.get("node", "")),
        finished_at=str(metadata.get("finishedAt", "")),
        profiles=profiles,
        files=dict(files),
        metadata=metadata,
    )


def parse_moment(text: str, *, now: datetime.datetime) -> datetime.datetime:
    """`--since`/`--until`: an age ("90s", "15m", "1h", "2d") before now, or an ISO time."""
    match = _DURATION.match(text.strip())
    if match is not None:
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        return now - datetime.timedelta(seconds=seconds)
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CatalogError(
            f"{text!r} is neither an age such as 1h or 30m nor a time such as 2026-11-26T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)  # the artifacts' times are all UTC
    return moment


@dataclass(frozen=True, slots=True)
class CaptureFilter:
    """Which captures to keep; None keeps all."""

    namespace: str | None = None
    session: str | None = None
    pod: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    trigger: str | None = None
    """The trigger's type: immediate, threshold, alert, ..."""

    def keeps(self, capture: Capture) -> bool:
        key = capture.key
        return (
            (self.namespace is None or key.namespace == self.namespace)
            and (self.session is None or key.session == self.session)
            and (self.pod is None or key.pod == self.pod)
            and (self.trigger is None or capture.trigger == self.trigger)
            and (self.since is None or capture.time >= self.since)
            and (self.until is None or capture.time <= self.until)
        )

    @property
    def listing_prefix(self) -> tuple[str, ...]:
        """The leading path segments every kept capture has: what a listing can narrow to."""
        parts: list[str] = []
        for part in (self.namespace, self.session, self.pod):
            if part is None:
                break
            parts.append(part)
        return tuple(parts)


def select(captures: Iterable[Capture], keep: CaptureFilter) -> list[Capture]:
    """The captures the filter keeps, oldest first (then by namespace, session, pod)."""
    kept = [capture for capture in captures if keep.keeps(capture)]
    kept.sort(key=lambda c: (c.key.capture_id, c.key.parts))
    return kept


def previous_of(capture: Capture, captures: Iterable[Capture]) -> Capture | None:
    """The same pod's capture just before this one, if any."""
    earlier = [
        c
        for c in captures
        if c.key.parts[:3] == capture.key.parts[:3] and c.key.capture_id < capture.key.capture_id
    ]
    return max(earlier, key=lambda c: c.key.capture_id, default=None)


def baseline_id_of(capture: Capture) -> str | None:
    """The id of the session's calm capture of this pod that the operator compared it with."""
    for raw in capture.metadata.get("profiles") or ():
        versus = raw.get("versusBaseline") if isinstance(raw, Mapping) else None
        if isinstance(versus, Mapping) and isinstance(versus.get("baseline"), str):
            return str(versus["baseline"])
    return None


def flamegraph_pages(capture: Capture) -> set[str]:
    """The HTML pages metadata.json names: each profile's flame graph, its diff against the
    baseline and a leak pair's growth. Only these are the operator's own pages; any other file
    is only data."""
    pages = {p.flamegraph for p in capture.profiles if p.flamegraph}
    pages |= {
        str(p.growth["flamegraph"])
        for p in capture.profiles
        if p.growth is not None and isinstance(p.growth.get("flamegraph"), str)
    }
    for raw in capture.metadata.get("profiles") or ():
        versus = raw.get("versusBaseline") if isinstance(raw, Mapping) else None
        if isinstance(versus, Mapping) and isinstance(versus.get("flamegraph"), str):
            pages.add(str(versus["flamegraph"]))
    return pages


def checksums(capture: Capture) -> dict[str, str]:
    """The sha256 metadata.json records per file: each profile, and a leak pair's second."""
    sums = {p.file: p.sha256 for p in capture.profiles if p.file and p.sha256}
    for p in capture.profiles:
        growth = p.growth or {}
        second, digest = growth.get("secondFile"), growth.get("secondSha256")
        if isinstance(second, str) and isinstance(digest, str):
            sums[second] = digest
    return sums


def readable_profile_types(capture: Capture) -> set[str]:
    """The profile types of a capture with a pprof file (not failed, not a trace)."""
    return {
        p.type
        for p in capture.profiles
        if p.file and not p.failure and p.file.endswith(PPROF_FILE_SUFFIX)
    }


def comparable_profile_type(base: Capture, spike: Capture, wanted: str | None) -> str:
    """The profile type to compare two captures by: the one wanted, else cpu, else the first
    both have; CatalogError when they have none in common."""
    if wanted is not None:
        for capture in (base, spike):
            if wanted not in readable_profile_types(capture):
                raise CatalogError(
                    f"{capture.key.relative_path} has no readable {wanted} profile "
                    f"(it has: {', '.join(sorted(readable_profile_types(capture))) or 'none'})"
                )
        return wanted
    both = readable_profile_types(base) & readable_profile_types(spike)
    if "cpu" in both:
        return "cpu"
    if not both:
        raise CatalogError(
            f"{base.key.relative_path} and {spike.key.relative_path} have no pprof profile "
            "type in common to compare"
        )
    return sorted(both)[0]


@dataclass(frozen=True, slots=True)
class CaptureRef:
    """`<namespace>/<session>/<pod>/<capture id or a unique prefix of it>`."""

    namespace: str
    session: str
    pod: str
    capture_prefix: str

    @classmethod
    def parse(cls, text: str) -> CaptureRef:
        parts = text.strip("/").split("/")
        if len(parts) != 4 or not all(parts):
            raise CatalogError(
                f"{text!r} is not a capture reference: use <namespace>/<session>/<pod>/<capture "
                "id>, where the capture id may be cut short as long as it stays unique"
            )
        return cls(*parts)

    @property
    def filter(self) -> CaptureFilter:
        return CaptureFilter(namespace=self.namespace, session=self.session, pod=self.pod)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.session}/{self.pod}/{self.capture_prefix}"


def resolve(ref: CaptureRef, captures: Iterable[Capture]) -> Capture:
    """The one capture a reference means; CatalogError if none or several."""
    of_pod = [c for c in captures if ref.filter.keeps(c)]
    exact = [c for c in of_pod if c.key.capture_id == ref.capture_prefix]
    if exact:
        return exact[0]
    found = sorted(
        (c for c in of_pod if c.key.capture_id.startswith(ref.capture_prefix)),
        key=lambda c: c.key.capture_id,
    )
    if len(found) == 1:
        return found[0]
    if not found:
        pod = f"{ref.namespace}/{ref.session}/{ref.pod}"
        if not of_pod:
            raise CatalogError(f"There is no capture of {pod}.")
        raise CatalogError(
            f"No capture of {pod} has an id starting with {ref.capture_prefix!r}; "
            f"its newest is {of_pod and max(c.key.capture_id for c in of_pod)}."
        )
    shown = ", ".join(c.key.capture_id for c in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise CatalogError(
        f"{str(ref)!r} matches {len(found)} captures ({shown}{more}): give more of the capture id."
    )
