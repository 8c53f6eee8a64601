"""The ProfilingSession spec, parsed into typed values the rest of the operator relies on.

The API server already enforces the CRD schema and its CEL rules; parsing here re-checks what the
operator depends on, so that a session stored before a schema change fails with a clear message
instead of a KeyError deep in a capture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from spikeprof.core.quantities import parse_bytes, parse_duration
from spikeprof.core.selector import LabelSelector

ProfileType = Literal[
    "cpu", "heap", "allocs", "goroutine", "block", "mutex", "threadcreate", "trace"
]
PROFILE_TYPES: Final = frozenset(get_args(ProfileType))
SAMPLED_TYPES: Final = frozenset({"cpu", "trace"})
DEFAULT_SECONDS: Final = {"cpu": 30.0, "trace": 5.0}
MIN_SECONDS, MAX_SECONDS = 1.0, 300.0
DAPR_PROFILE_PORT: Final = 7777
DAPR_CONTAINER: Final = "daprd"


class SpecError(ValueError):
    """The session's spec cannot be acted on; the message names the field and the problem."""


@dataclass(frozen=True)
class ProfileRequest:
    type: ProfileType
    seconds: float | None  # sampling time, cpu and trace only
    gc: bool = False

    @property
    def endpoint(self) -> str:
        """The path under the pprof prefix that serves this profile."""
        return {"cpu": "profile"}.get(self.type, self.type)

    @property
    def query(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.seconds is not None:
            params["seconds"] = f"{self.seconds:g}"
        if self.gc:
            params["gc"] = "1"
        return params

    @property
    def file_name(self) -> str:
        # A Go execution trace is not a pprof protobuf; its name says so (read with go tool trace).
        return "trace.out" if self.type == "trace" else f"{self.type}.pb.gz"

    def parameters(self) -> dict[str, Any]:
        """The parameters as recorded in metadata.json."""
        out: dict[str, Any] = {"type": self.type}
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.gc:
            out["gc"] = True
        return out


@dataclass(frozen=True)
class TargetSpec:
    kind: Literal["pprof", "dapr"]
    port: int | None
    path_prefix: str
    container: str | None
    access: Literal["direct"]


@dataclass(frozen=True)
class Limits:
    max_concurrent: int
    max_profile_bytes: int
    fetch_timeout: float


@dataclass(frozen=True)
class SessionSpec:
    selector: LabelSelector
    target: TargetSpec
    profiles: tuple[ProfileRequest, ...]
    immediate: bool
    limits: Limits
    volume_output: bool

    @property
    def longest_sampling(self) -> float:
        return max((p.seconds or 0.0 for p in self.profiles), default=0.0)


def _field(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = spec.get(name) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{name} must be an object")
    return value


def _parse_profile(index: int, raw: Mapping[str, Any]) -> ProfileRequest:
    where = f"spec.profiles[{index}]"
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in PROFILE_TYPES:
        raise SpecError(f"{where}.type {kind!r} is not one of {', '.join(sorted(PROFILE_TYPES))}")
    seconds: float | None = None
    if "duration" in raw:
        if kind not in SAMPLED_TYPES:
            raise SpecError(f"{where}.duration applies only to cpu and trace profiles")
        try:
            seconds = parse_duration(str(raw["duration"]))
        except ValueError as error:
            raise SpecError(f"{where}.duration: {error}") from None
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise SpecError(f"{where}.duration must be between 1s and 5m")
    elif kind in SAMPLED_TYPES:
        seconds = DEFAULT_SECONDS[kind]
    gc = bool(raw.get("gc", False))
    if gc and kind != "heap":
        raise SpecError(f"{where}.gc applies only to heap profiles")
    return ProfileRequest(cast(ProfileType, kind), seconds, gc)


def parse_spec(spec: Mapping[str, Any]) -> SessionSpec:
    selector = LabelSelector.from_spec(_field(spec, "selector"))
    if selector.is_empty:
        raise SpecError("spec.selector is empty: it must name at least one label")

    raw_profiles = spec.get("profiles") or []
    if not raw_profiles:
        raise SpecError("spec.profiles must list at least one profile")
    profiles = tuple(_parse_profile(i, p) for i, p in enumerate(raw_profiles))
    types = [p.type for p in profiles]
    if len(set(types)) != len(types):
        raise SpecError("spec.profiles lists a profile type more than once")

    target = _field(spec, "target")
    kind = target.get("kind", "pprof")
    if kind not in ("pprof", "dapr"):
        raise SpecError(f"spec.target.kind {kind!r} is not pprof or dapr")
    access = target.get("access", "direct")
    if access != "direct":
        raise SpecError(f"spec.target.access {access!r} is not supported; use direct")
    port = target.get("port")
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise SpecError("spec.target.port must be a TCP port between 1 and 65535")

    limits = _field(spec, "limits")
    try:
        max_bytes = parse_bytes(str(limits.get("maxProfileBytes", "64Mi")))
        fetch_timeout = parse_duration(str(limits.get("fetchTimeout", "30s")))
    except ValueError as error:
        raise SpecError(f"spec.limits: {error}") from None

    output = _field(spec, "output")
    volume = output.get("volume")
    volume_output = isinstance(volume, Mapping) and bool(volume.get("enabled", True))
    if not volume_output:
        raise SpecError("spec.output must say where artifacts go: set output.volume")

    return SessionSpec(
        selector=selector,
        target=TargetSpec(
            kind=kind,
            port=port,
            path_prefix=str(target.get("pathPrefix", "/debug/pprof")).rstrip("/") or "",
            container=target.get("container"),
            access="direct",
        ),
        profiles=profiles,
        immediate=bool(_field(spec, "trigger").get("immediate", False)),
        limits=Limits(
            max_concurrent=int(limits.get("maxConcurrent", 4)),
            max_profile_bytes=max_bytes,
            fetch_timeout=fetch_timeout,
        ),
        volume_output=volume_output,
    )
