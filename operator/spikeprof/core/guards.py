"""Guards between a fired rule and a capture: cooldown per pod, captures per session, expiry."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from spikeprof.core.quantities import format_duration
from spikeprof.core.session_status import SessionStatus
from spikeprof.core.spec import Limits


class Candidate(Protocol):
    """Something that asks to capture a pod: a fired rule, or an alert naming the pod."""

    @property
    def pod(self) -> str: ...

    @property
    def rule(self) -> str: ...


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True)
class Suppression:
    pod: str
    rule: str
    guard: str  # Cooldown | MaxCaptures | Expired
    message: str


@dataclass(frozen=True)
class GuardDecision(Generic[C]):
    allowed: tuple[C, ...]
    suppressed: tuple[Suppression, ...]


def expired(
    created: datetime.datetime, expires_after: float | None, now: datetime.datetime
) -> bool:
    return expires_after is not None and (now - created).total_seconds() >= expires_after


def apply_guards(
    firings: Iterable[C],
    *,
    now: datetime.datetime,
    last_capture_by_pod: Mapping[str, datetime.datetime],
    cooldown: float,
    captures_so_far: int,
    max_captures: int | None,
    is_expired: bool,
) -> GuardDecision[C]:
    """Which firings may capture now; the others with the guard that held them back and why."""
    allowed: list[C] = []
    suppressed: list[Suppression] = []
    for firing in firings:
        last = last_capture_by_pod.get(firing.pod)
        if is_expired:
            suppressed.append(
                Suppression(firing.pod, firing.rule, "Expired", "the session has expired")
            )
        elif max_captures is not None and captures_so_far >= max_captures:
            suppressed.append(
                Suppression(
                    firing.pod,
                    firing.rule,
                    "MaxCaptures",
                    f"the session already took maxCaptures ({max_captures}) captures",
                )
            )
        elif last is not None and (now - last).total_seconds() < cooldown:
            ago = (now - last).total_seconds()
            suppressed.append(
                Suppression(
                    firing.pod,
                    firing.rule,
                    "Cooldown",
                    f"pod {firing.pod} was captured {format_duration(round(ago))} ago; its "
                    f"cooldown of {format_duration(round(cooldown))} has "
                    f"{format_duration(round(cooldown - ago))} left",
                )
            )
        else:
            allowed.append(firing)
    return GuardDecision(tuple(allowed), tuple(suppressed))


def apply_session_guards(
    candidates: Iterable[C], *, limits: Limits, status: SessionStatus, now: datetime.datetime
) -> GuardDecision[C]:
    """The guards as a session's spec and status set them: cooldown per pod, maxCaptures."""
    return apply_guards(
        candidates,
        now=now,
        last_capture_by_pod=status.last_captured(),
        cooldown=limits.cooldown,
        captures_so_far=status.captures_so_far(),
        max_captures=limits.max_captures,
        is_expired=False,
    )
