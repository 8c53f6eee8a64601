"""A one-shot capture of one named pod, as `kubectl spikeprof capture` asks for it: the session
it creates, and what that session's status says about the capture.

The session selects the pod by name (spec.selector.podNames: replicas share their labels) and
captures once at creation (trigger.immediate); nothing else in it ever fires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spikeprof.core.quantities import parse_duration

ONE_SHOT_LABEL = "spikeprof.io/one-shot"
"""Set on the sessions `kubectl spikeprof capture` creates, so that they can be found (and
deleted by hand, `kubectl delete profs -l spikeprof.io/one-shot`) after a lost terminal."""

SAMPLED_TYPES = ("cpu", "trace")  # the profile types with a sampling duration
_NAME_PREFIX_MAX = 57  # generateName's prefix: 63 with the 5 random characters and a dash


@dataclass(frozen=True)
class Target:
    """How the operator reaches the pod's pprof: spec.target, each field unset for the default."""

    kind: Literal["pprof", "dapr"] | None = None
    port: int | None = None
    path_prefix: str | None = None
    access: Literal["direct", "portForward", "auto"] | None = None

    def to_spec(self) -> dict[str, Any]:
        fields = {
            "kind": self.kind,
            "port": self.port,
            "pathPrefix": self.path_prefix,
            "access": self.access,
        }
        return {key: value for key, value in fields.items() if value is not None}


def session_body(
    pod: str,
    profiles: Sequence[Mapping[str, Any]],
    target: Target,
    output: Mapping[str, Any],
) -> dict[str, Any]:
    """The ProfilingSession that captures `pod` once, named after it by the API server."""
    prefix = re.sub(r"[^a-z0-9-]", "-", f"capture-{pod}".lower())[:_NAME_PREFIX_MAX]
    return {
        "apiVersion": "spikeprof.io/v1alpha1",
        "kind": "ProfilingSession",
        "metadata": {
            "generateName": prefix.rstrip("-") + "-",
            "labels": {ONE_SHOT_LABEL: "true"},
        },
        "spec": {
            "selector": {"podNames": [pod]},
            "target": target.to_spec(),
            "profiles": [dict(p) for p in profiles],
            "trigger": {"immediate": True},
            "output": dict(output),
        },
    }


def sampling_seconds(profiles: Sequence[Mapping[str, Any]]) -> float:
    """How long the pod is sampled: the longest cpu or trace duration (one pod's profiles are
    taken at the same time), 0 when only snapshots (heap, goroutine, ...) are asked for."""
    return max(
        (parse_duration(str(p["duration"])) for p in profiles if p.get("type") in SAMPLED_TYPES),
        default=0.0,
    )


@dataclass(frozen=True)
class Failure:
    pod: str
    type: str
    reason: str
    message: str

    def describe(self) -> str:
        return f"{self.pod} {self.type}: {self.reason}, {self.message}"


@dataclass(frozen=True)
class Outcome:
    """The finished capture, from status.lastCapture."""

    id: str
    result: str  # Succeeded | PartiallyFailed | Failed
    artifacts: tuple[str, ...]  # <namespace>/<session>/<pod>/<capture id>
    failures: tuple[Failure, ...]
    message: str | None  # why the capture as a whole could not run

    @property
    def succeeded(self) -> bool:
        return self.result == "Succeeded"


@dataclass(frozen=True)
class State:
    """Where the one-shot capture is: waiting for the operator, capturing, done, or stuck."""

    stage: Literal["waiting", "capturing", "uploading", "done", "failed"]
    outcome: Outcome | None = None
    reason: str | None = None  # for people: why it waits, or why the session failed


def read_state(status: Mapping[str, Any] | None, *, uploads: bool = False) -> State:
    """The capture's state as the session's status tells it. With `uploads` (the session has
    an object store), it is done once the ArtifactsUploaded condition says it is there."""
    status = status or {}
    if status.get("pendingCapture"):
        return State("capturing")
    last = status.get("lastCapture")
    if (status.get("captures") or {}).get("total", 0) >= 1 and isinstance(last, Mapping):
        outcome = _outcome(last)
        uploaded = next(
            (c for c in status.get("conditions") or () if c.get("type") == "ArtifactsUploaded"),
            None,
        )
        if uploads and outcome.artifacts and (uploaded or {}).get("status") != "True":
            return State("uploading", outcome=outcome, reason=(uploaded or {}).get("message"))
        return State("done", outcome=outcome)
    if status.get("phase") == "Failed":
        return State("failed", reason=_false_conditions(status) or "the session failed")
    return State("waiting", reason=_false_conditions(status))


def _outcome(last: Mapping[str, Any]) -> Outcome:
    failures = tuple(
        Failure(
            pod=str(f.get("pod", "?")),
            type=str(f.get("type", "?")),
            reason=str(f.get("reason", "?")),
            message=str(f.get("message", "")),
        )
        for f in last.get("failures") or ()
    )
    return Outcome(
        id=str(last.get("id", "")),
        result=str(last.get("result", "Failed")),
        artifacts=tuple(str(a) for a in last.get("artifacts") or ()),
        failures=failures,
        message=last.get("message") or None,
    )


def _false_conditions(status: Mapping[str, Any]) -> str | None:
    """The messages of the conditions that are not True, Ready last (it repeats the others)."""
    conditions = [c for c in status.get("conditions") or () if c.get("status") == "False"]
    conditions.sort(key=lambda c: c.get("type") == "Ready")
    messages = [str(c.get("message") or c.get("reason")) for c in conditions]
    unique = list(dict.fromkeys(m for m in messages if m))
    return " ".join(unique) or None
