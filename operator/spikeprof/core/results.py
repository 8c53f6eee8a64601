"""Outcomes of a capture: per profile, per pod, and for the capture as a whole."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from spikeprof.core.planner import CaptureRequest


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


@dataclass(frozen=True)
class ProfileFailure(Exception):
    """A profile that failed, with a reason for machines and a message for people."""

    reason: FailureReason
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class ProfileOutcome:
    type: str
    file: str | None = None
    bytes: int = 0
    sha256: str | None = None
    failure: ProfileFailure | None = None
    seconds_taken: float = 0.0

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
            failures = "; ".join(
                f"{pod.pod} {p.type}: {p.failure}"
                for pod in self.pods
                for p in pod.profiles
                if p.failure is not None
            )
            text += f"; {self.profiles_failed} failed: {failures}"
        return text + "."

    def to_status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.request.id,
            "time": self.request.to_status()["requestedAt"],
            "trigger": self.request.trigger,
            "reason": self.request.reason,
            "result": self.result,
            "pods": [
                {
                    "pod": pod.pod,
                    "directory": pod.directory,
                    "profiles": [p.to_status() for p in pod.profiles],
                }
                for pod in self.pods
            ],
        }
        if self.problem is not None:
            entry["message"] = self.problem
        return entry
