"""What a session's webhooks are told, and in which shape: pure, so that each payload is tested.

A `Notice` is the news (a capture ended, or the session expired) with what a person needs to act
on it: the session, the pods, the trigger's reason, the top functions of each profile, the
failures, and where the artifacts are. `json_payload` and `slack_payload` render it; delivery
(retries, the HTTP client) is services.notify and adapters.webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from spikeprof.core import ui_routes
from spikeprof.core.planner import format_time
from spikeprof.core.results import CaptureOutcome
from spikeprof.core.spec import NotifyFormat
from spikeprof.core.status import Verdict

TOP_FUNCTIONS: Final = 5
"""Functions listed per profile: what a person reads in a chat message before opening the UI."""

PAYLOAD_VERSION: Final = "1"
"""The JSON payload's schema version, raised when a field changes meaning or goes."""

Event = Literal["CaptureSucceeded", "CapturePartiallyFailed", "CaptureFailed", "SessionExpired"]

# Slack's limits on what an incoming webhook accepts: a message of at most 50 blocks; a header's
# plain_text at most 150 characters; a section's text at most 3000, its fields at most 10 of at
# most 2000 each (api.slack.com/reference/block-kit/blocks, as slackapi/python-slack-sdk checks
# them in slack_sdk/models/blocks/blocks.py: SectionBlock.text_max_length, fields_max_length,
# HeaderBlock.text_max_length).
SLACK_MAX_BLOCKS: Final = 50
SLACK_HEADER_MAX: Final = 150
SLACK_SECTION_MAX: Final = 3000
SLACK_FIELDS_MAX: Final = 10
SLACK_FIELD_MAX: Final = 2000
SLACK_PROFILE_SECTIONS: Final = 20
"""Profiles shown one section each; the rest are counted (the JSON payload lists them all)."""
SLACK_FAILURES: Final = 10
"""Failures listed one line each; the rest are counted."""
SLACK_FUNCTION_MAX: Final = 200
"""Characters of a function name shown (Go's generic names can run to thousands)."""


@dataclass(frozen=True)
class TopFunction:
    function: str
    flat: int
    flat_percent: float


@dataclass(frozen=True)
class ProfileTop:
    """The first functions of one profile of one pod, in its default sample type."""

    pod: str
    type: str
    sample_type: str
    unit: str
    functions: tuple[TopFunction, ...]


@dataclass(frozen=True)
class ProfileFailure:
    pod: str
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Notice:
    """One piece of news about a session, as every webhook format tells it."""

    event: Event
    namespace: str
    session: str
    summary: str
    """One sentence, the fallback text of chat messages."""
    capture_id: str | None = None
    trigger: str | None = None
    reason: str | None = None
    """Why the capture ran, as status says it (e.g. "cpu 93% of limit for 30s")."""
    time: str | None = None
    pods: tuple[str, ...] = ()
    profiles_ok: int = 0
    profiles_failed: int = 0
    tops: tuple[ProfileTop, ...] = ()
    failures: tuple[ProfileFailure, ...] = ()
    problem: str | None = None
    """The capture as a whole could not run."""
    artifacts: tuple[str, ...] = ()
    """Where each pod's artifacts are: a volume path or an object-store URL."""
    link: str | None = None
    """Where to look in spikeprof's UI, when one is configured: the capture's page when it has
    one pod, else the session's captures."""
    pod_links: tuple[str, ...] = ()
    """Each pod's capture page in the UI, in the order of `pods`."""


def ui_capture_url(ui_url: str, namespace: str, session: str, pod: str, capture_id: str) -> str:
    """One pod's capture in spikeprof's UI: <ui>/capture/<ns>/<session>/<pod>/<id>."""
    return ui_routes.absolute(ui_url, ui_routes.capture_path(namespace, session, pod, capture_id))


def ui_session_url(ui_url: str, namespace: str, session: str) -> str:
    """The session's captures in spikeprof's UI, filtered: <ui>/captures?namespace=&session=."""
    return ui_routes.absolute(ui_url, ui_routes.captures_path(namespace=namespace, session=session))


def capture_notice(
    namespace: str,
    session: str,
    outcome: CaptureOutcome,
    *,
    artifacts_at: str,
    ui_url: str | None,
) -> Notice:
    """The news of a capture that ended; `artifacts_at` is the store's root (a path or a URL)."""
    request = outcome.request
    result = outcome.result
    event: Event = (
        "CaptureSucceeded"
        if result == "Succeeded"
        else "CapturePartiallyFailed"
        if result == "PartiallyFailed"
        else "CaptureFailed"
    )
    tops = tuple(
        top
        for pod in outcome.pods
        for profile in pod.profiles
        if profile.ok and (top := _top(pod.pod, profile.type, profile.summary)) is not None
    )
    failures = tuple(
        ProfileFailure(pod.pod, p.type, str(p.failure.reason), p.failure.message)
        for pod in outcome.pods
        for p in pod.profiles
        if p.failure is not None
    )
    root = artifacts_at.rstrip("/")
    pod_links: tuple[str, ...] = ()
    link = None
    if ui_url:
        pod_links = tuple(
            ui_capture_url(ui_url, namespace, session, pod.pod, request.id) for pod in outcome.pods
        )
        link = pod_links[0] if len(pod_links) == 1 else ui_session_url(ui_url, namespace, session)
    return Notice(
        event=event,
        namespace=namespace,
        session=session,
        summary=f"{namespace}/{session}: {outcome.summary()}",
        capture_id=request.id,
        trigger=request.trigger,
        reason=request.reason,
        time=format_time(request.requested_at),
        pods=tuple(pod.pod for pod in outcome.pods),
        profiles_ok=outcome.profiles_ok,
        profiles_failed=outcome.profiles_failed,
        tops=tops,
        failures=failures,
        problem=outcome.problem,
        artifacts=tuple(f"{root}/{pod.directory}" for pod in outcome.pods if pod.directory),
        link=link,
        pod_links=pod_links,
    )


def expiry_notice(
    namespace: str,
    session: str,
    *,
    captures: int,
    failed: int,
    artifacts_at: str,
    ui_url: str | None,
) -> Notice:
    """The news of a session past limits.expiresAfter: it captures nothing more."""
    root = artifacts_at.rstrip("/")
    return Notice(
        event="SessionExpired",
        namespace=namespace,
        session=session,
        summary=(
            f"{namespace}/{session} expired (limits.expiresAfter) after {captures} "
            f"capture(s), {failed} failed; it captures nothing more."
        ),
        artifacts=(f"{root}/{namespace}/{session}",),
        link=ui_session_url(ui_url, namespace, session) if ui_url else None,
    )


def _top(pod: str, type: str, summary: Mapping[str, Any] | None) -> ProfileTop | None:
    """The default sample type's first functions, from the summary metadata.json holds."""
    if not summary:
        return None
    default = summary.get("defaultSampleType")
    sample_types: Sequence[Mapping[str, Any]] = summary.get("sampleTypes") or ()
    chosen = next((t for t in sample_types if t.get("type") == default), None)
    if chosen is None:
        return None
    functions = tuple(
        TopFunction(str(row["function"]), int(row["flat"]), float(row["flatPercent"]))
        for row in (chosen.get("functions") or ())[:TOP_FUNCTIONS]
    )
    return ProfileTop(pod, type, str(chosen["type"]), str(chosen.get("unit", "")), functions)


def delivery_verdict(notice: Notice, failed: Mapping[str, str], webhooks: int) -> Verdict:
    """The NotificationsDelivered condition after telling `webhooks` webhooks of `notice`.

    `failed`: per webhook that gave up (as `WebhookSpec.describe` names it), the last error.
    """
    what = f"capture {notice.capture_id}" if notice.capture_id else "the session's expiry"
    if not failed:
        return Verdict(True, "Delivered", f"{webhooks} webhook(s) were told of {what}.")
    shown = "; ".join(f"{hook}: {error}" for hook, error in sorted(failed.items()))
    return Verdict(
        False,
        "DeliveryFailed",
        f"{len(failed)} of {webhooks} webhook(s) could not be told of {what}: {shown}.",
    )


def render(notice: Notice, format: NotifyFormat) -> dict[str, Any]:
    """The request body for a webhook of `format`."""
    return slack_payload(notice) if format == "slack" else json_payload(notice)


def json_payload(notice: Notice) -> dict[str, Any]:
    """Every field of the notice, for programs (versioned by `version`)."""
    capture = None
    if notice.capture_id is not None:
        capture = {
            "id": notice.capture_id,
            "trigger": notice.trigger,
            "reason": notice.reason,
            "time": notice.time,
            "profiles": {"succeeded": notice.profiles_ok, "failed": notice.profiles_failed},
            "problem": notice.problem,
        }
    return {
        "version": PAYLOAD_VERSION,
        "event": notice.event,
        "summary": notice.summary,
        "session": {"namespace": notice.namespace, "name": notice.session},
        "capture": capture,
        "pods": list(notice.pods),
        "top": [
            {
                "pod": top.pod,
                "profile": top.type,
                "sampleType": top.sample_type,
                "unit": top.unit,
                "functions": [
                    {"function": f.function, "flat": f.flat, "flatPercent": f.flat_percent}
                    for f in top.functions
                ],
            }
            for top in notice.tops
        ],
        "failures": [
            {"pod": f.pod, "profile": f.type, "reason": f.reason, "message": f.message}
            for f in notice.failures
        ],
        "artifacts": list(notice.artifacts),
        "link": notice.link,
        "podLinks": list(notice.pod_links),
    }


def slack_payload(notice: Notice) -> dict[str, Any]:
    """Slack's incoming-webhook message: `text` (the notification's fallback) and `blocks`.

    Every piece of text that comes from the cluster (pod, function and reason text) is escaped
    as Slack's mrkdwn asks (&, < and >), so that it shows as written and cannot form a link or
    a mention.
    """
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_HEADLINES[notice.event], SLACK_HEADER_MAX)},
        {"type": "section", "text": _mrkdwn(_escape(notice.summary))},
    ]
    fields = [f"*Session*\n{_escape(f'{notice.namespace}/{notice.session}')}"]
    if notice.capture_id is not None:
        fields.append(f"*Capture*\n{_escape(notice.capture_id)}")
        fields.append(f"*Trigger*\n{_escape(notice.reason or notice.trigger or '')}")
        fields.append(f"*Profiles*\n{notice.profiles_ok} taken, {notice.profiles_failed} failed")
        fields.append(f"*Pods*\n{_escape(_listed(notice.pods, 20))}")
    blocks.append(
        {
            "type": "section",
            "fields": [_mrkdwn(text, SLACK_FIELD_MAX) for text in fields[:SLACK_FIELDS_MAX]],
        }
    )
    for top in notice.tops[:SLACK_PROFILE_SECTIONS]:
        blocks.append({"type": "section", "text": _mrkdwn(_top_text(top))})
    if len(notice.tops) > SLACK_PROFILE_SECTIONS:
        more = len(notice.tops) - SLACK_PROFILE_SECTIONS
        blocks.append({"type": "context", "elements": [_mrkdwn(f"and {more} more profile(s)")]})
    if notice.failures or notice.problem:
        lines = [f"• {_escape(notice.problem)}"] if notice.problem else []
        lines += [
            f"• {_escape(f'{f.pod}/{f.type}')}: {f.reason}: {_escape(_clip(f.message, 200))}"
            for f in notice.failures[:SLACK_FAILURES]
        ]
        if len(notice.failures) > SLACK_FAILURES:
            lines.append(f"and {len(notice.failures) - SLACK_FAILURES} more")
        blocks.append({"type": "section", "text": _mrkdwn("*Failures*\n" + "\n".join(lines))})
    where = []
    if notice.link:
        where.append(f"<{_escape(notice.link)}|Open in spikeprof>")
    if notice.artifacts:
        where.append("Artifacts: " + _escape(_listed(notice.artifacts, 5)))
    if where:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(where))})
    return {"text": _escape(notice.summary), "blocks": blocks[:SLACK_MAX_BLOCKS]}


_HEADLINES: Final[Mapping[Event, str]] = {
    "CaptureSucceeded": "spikeprof: capture succeeded",
    "CapturePartiallyFailed": "spikeprof: capture partly failed",
    "CaptureFailed": "spikeprof: capture failed",
    "SessionExpired": "spikeprof: session expired",
}


def _top_text(top: ProfileTop) -> str:
    title = f"*{_escape(top.pod)}* {top.type} ({_escape(top.sample_type)}, {_escape(top.unit)})"
    if not top.functions:
        return title + "\nno samples"
    rows = "\n".join(
        f"{f.flat_percent:6.2f}%  {_escape(_clip(f.function, SLACK_FUNCTION_MAX))}"
        for f in top.functions
    )
    return f"{title}\n```{rows}```"


def _listed(items: Sequence[str], most: int) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: the three characters it reads as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _mrkdwn(text: str, most: int = SLACK_SECTION_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(text, most)}


def _plain(text: str, most: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _clip(text, most)}
