"""Outcomes of a capture: per profile, per pod, and for the capture as a whole."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core.planner import CaptureRequest, format_time
from spikeprof.errors import SpikeprofError

# Pods and failures listed per capture in status; the rest are in the artifacts' metadata.
MAX_LISTED = 20


class FailureReason(enum.StrEnum):
    """Why one profile could not be taken; each has a sentence for people in `explain`."""

    CONNECTION_REFUSED = "ConnectionRefused"
    TIMEOUT = "Timeout"
    NOT_A_PROFILE = "NotAProfile"
    TOO_LARGE = "TooLarge"
    PROFILING_IN_USE = "ProfilingInUse"
    POD_GONE = "PodGone"
    HTTP_ERROR = "HTTPError"
    UNREACHABLE = "Unreachable"
    NO_ENDPOINT = "NoEndpoint"
    WRITE_FAILED = "WriteFailed"
    # A leak pair's second profile only: it would be of a new process, not the one that grew.
    CONTAINER_RESTARTED = "ContainerRestarted"


class ProfileError(SpikeprofError):
    """A profile that failed, with a reason for machines and a message for people."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProfileError) and (self.reason, self.message) == (
            other.reason,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.reason, self.message))

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class ProfileOutcome:
    type: str
    file: str | None = None
    bytes: int = 0
    sha256: str | None = None
    failure: ProfileError | None = None
    seconds_taken: float = 0.0
    summary: dict[str, Any] | None = None  # top functions per sample type, as go tool pprof -top
    empty_reason: str | None = None  # taken, but with no samples: the likely reason
    flamegraph: str | None = None  # file name of the flame graph page next to the profile
    analysis_error: str | None = None  # why no summary, though the profile itself is kept
    versus_baseline: dict[str, Any] | None = None  # the change against the session's baseline
    growth: dict[str, Any] | None = None  # a leak pair: what grew until the second profile
    second_missing: ProfileError | None = None  # a leak pair whose second profile was not taken

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_status(self) -> dict[str, Any]:
        if self.failure is None:
            return {
                "type": self.type,
                "result": "Succeeded",
                "file": self.file,
                "bytes": self.bytes,
            }
        return {
            "type": self.type,
            "result": "Failed",
            "reason": str(self.failure.reason),
            "message": self.failure.message,
        }


@dataclass(frozen=True)
class PodOutcome:
    pod: str
    node: str | None
    directory: str | None  # where the artifacts are, relative to the store root
    profiles: tuple[ProfileOutcome, ...]
    skipped: bool = False  # already complete before a restart: counted, not redone

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.profiles)


@dataclass(frozen=True)
class CaptureOutcome:
    request: CaptureRequest
    pods: tuple[PodOutcome, ...] = field(default_factory=tuple)
    problem: str | None = None  # the capture as a whole could not run (e.g. no pods)

    @property
    def profiles_ok(self) -> int:
        return sum(1 for pod in self.pods for p in pod.profiles if p.ok)

    @property
    def profiles_failed(self) -> int:
        return sum(1 for pod in self.pods for p in pod.profiles if not p.ok)

    @property
    def result(self) -> str:
        if self.problem is not None or self.profiles_ok == 0:
            return "Failed"
        return "PartiallyFailed" if self.profiles_failed else "Succeeded"

    def summary(self) -> str:
        """One sentence for events and conditions."""
        if self.problem is not None:
            return f"Capture {self.request.id} ({self.request.trigger}) failed: {self.problem}."
        text = (
            f"Capture {self.request.id} ({self.request.trigger}) took {self.profiles_ok} "
            f"profile(s) from {len(self.pods)} pod(s)"
        )
        if self.profiles_failed:
            # Grouped by reason, a few examples each: an event holds about 1 KiB, and the full
            # list is in status.lastCapture.failures and in each pod's metadata.json.
            by_reason: dict[str, list[str]] = {}
            for pod in self.pods:
                for p in pod.profiles:
                    if p.failure is not None:
                        by_reason.setdefault(str(p.failure.reason), []).append(
                            f"{pod.pod}/{p.type}"
                        )
            groups = []
            for reason, where in sorted(by_reason.items()):
                shown = ", ".join(where[:3]) + (
                    f" and {len(where) - 3} more" if len(where) > 3 else ""
                )
                groups.append(f"{len(where)} {reason} ({shown})")
            text += f"; {self.profiles_failed} failed: " + "; ".join(groups)
        empty = self.empty_profiles()
        if empty:
            # The first reason only: the rest are in status.lastCapture.empty and metadata.json.
            shown = ", ".join(f"{e['pod']}/{e['type']}" for e in empty[:3])
            more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
            text += f"; {len(empty)} empty ({shown}{more}): {empty[0]['reason']}"
        incomplete = self.incomplete_pairs()
        if incomplete:
            # The first reason only, as for empty profiles; the rest are in status and metadata.
            shown = ", ".join(f"{i['pod']}/{i['type']}" for i in incomplete[:3])
            more = f" and {len(incomplete) - 3} more" if len(incomplete) > 3 else ""
            text += (
                f"; {len(incomplete)} leak pair(s) without a second profile ({shown}{more}): "
                f"{incomplete[0]['reason']}, {incomplete[0]['message']}"
            )
        return text + "."

    def incomplete_pairs(self) -> list[dict[str, str]]:
        """Leak pairs whose second profile is missing: the first is kept, and this says why."""
        return [
            {
                "pod": pod.pod,
                "type": p.type,
                "reason": str(p.second_missing.reason),
                "message": p.second_missing.message,
            }
            for pod in self.pods
            for p in pod.profiles
            if p.failure is None and p.second_missing is not None
        ]

    def empty_profiles(self) -> list[dict[str, str]]:
        """Profiles taken with no samples in them, each with the likely reason."""
        return [
            {"pod": pod.pod, "type": p.type, "reason": p.empty_reason}
            for pod in self.pods
            for p in pod.profiles
            if p.failure is None and p.empty_reason is not None
        ]

    def to_status(self) -> dict[str, Any]:
        """A bounded entry for status: counts, where the artifacts are, and the failures.

        Successful profiles are only counted (metadata.json lists them), so that status stays
        small however many pods a session selects.
        """
        failures = [
            {
                "pod": pod.pod,
                "type": p.type,
                "reason": str(p.failure.reason),
                "message": p.failure.message,
            }
            for pod in self.pods
            for p in pod.profiles
            if p.failure is not None
        ]
        entry: dict[str, Any] = {
            "id": self.request.id,
            "time": format_time(self.request.requested_at),
            "trigger": self.request.trigger,
            "reason": self.request.reason,
            "result": self.result,
            "pods": len(self.pods),
            "profiles": {"succeeded": self.profiles_ok, "failed": self.profiles_failed},
        }
        if self.pods:
            entry["artifacts"] = [pod.directory for pod in self.pods[:MAX_LISTED]]
        if failures:
            entry["failures"] = failures[:MAX_LISTED]
        empty = self.empty_profiles()
        if empty:
            entry["empty"] = empty[:MAX_LISTED]
        incomplete = self.incomplete_pairs()
        if incomplete:
            entry["incompletePairs"] = incomplete[:MAX_LISTED]
        if self.problem is not None:
            entry["message"] = self.problem
        return entry

    def to_recent_status(self) -> dict[str, Any]:
        """As status.recentCaptures keeps it: to_status with the pods' names (capturedPods)
        instead of their artifact directories, whose other parts (<namespace>/<session>/.../<id>)
        the entry already says. Every status write carries ten of these, and the API server's
        cost per write grows with the object's size (about 0.5 ms of CPU per KiB)."""
        entry = self.to_status()
        entry.pop("artifacts", None)
        if self.pods:
            entry["capturedPods"] = [pod.pod for pod in self.pods[:MAX_LISTED]]
        return entry
