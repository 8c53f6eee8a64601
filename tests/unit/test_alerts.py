"""Alertmanager notifications: validated field by field, matched by labels, keyed for dedup."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.alerts import AlertMatcher, PayloadError, alert_pods, parse_notification
from spikeprof.core.pods import pod_info
from spikeprof.core.selector import LabelSelector


def payload(**alert: Any) -> dict[str, Any]:
    base = {
        "status": "firing",
        "labels": {"alertname": "HighCPU", "namespace": "shop", "pod": "web-1"},
        "annotations": {},
        "startsAt": "2026-11-26T01:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "abc",
    }
    base.update(alert)
    return {"version": "4", "status": "firing", "groupKey": "g", "alerts": [base]}


def test_a_notification_parses_and_keys_each_occurrence() -> None:
    notification = parse_notification(payload())
    (alert,) = notification.firing
    assert alert.key == "abc@2026-11-26T01:00:00Z"
    assert alert.name == "HighCPU"
    resolved = parse_notification(payload(status="resolved"))
    assert resolved.firing == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({**payload(), "version": 4}, "version 4 is not supported"),
        ({**payload(), "status": "maybe"}, "payload.status 'maybe' is neither firing nor resolved"),
        ({k: v for k, v in payload().items() if k != "groupKey"}, "payload.groupKey is missing"),
        ({**payload(), "alerts": {}}, "payload.alerts is missing or not a list"),
        (payload(labels=["a"]), "alerts[0].labels must be an object of string values"),
        (payload(annotations={"n": 1}), "alerts[0].annotations must be an object of string values"),
        (payload(startsAt=None), "alerts[0].startsAt is missing or not a string"),
        (payload(status="gone"), "alerts[0].status 'gone' is neither firing nor resolved"),
        ({**payload(), "alerts": ["x"]}, "alerts[0] must be an object"),
        ({**payload(), "alerts": [payload()["alerts"][0]] * 1001}, "has 1001 alerts; at most 1000"),
    ],
)
def test_bad_notifications_are_refused_with_the_reason(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_notification(body)


def test_matchers_need_every_label_and_full_regex_matches() -> None:
    matcher = AlertMatcher.from_spec(
        {"matchLabels": {"team": "shop"}, "matchRegex": {"alertname": "High(CPU|Mem)"}}
    )
    assert matcher.matches({"team": "shop", "alertname": "HighCPU"})
    assert not matcher.matches({"team": "shop", "alertname": "HighCPUx"})  # anchored
    assert not matcher.matches({"team": "ops", "alertname": "HighCPU"})
    with pytest.raises(ValueError, match=r"matchRegex.alertname: '\(' is not a regex"):
        AlertMatcher.from_spec({"matchRegex": {"alertname": "("}})


def _pod(name: str, app: str) -> Any:
    return pod_info({"metadata": {"name": name, "namespace": "shop", "labels": {"app": app}}})


def test_an_alert_captures_the_pod_it_names_only_if_the_session_selects_it() -> None:
    selector = LabelSelector.from_spec({"matchLabels": {"app": "web"}})
    pods = [_pod("web-1", "web"), _pod("db-1", "db")]
    alert = parse_notification(payload()).alerts[0]
    assert alert_pods(alert, "shop", selector, pods) == ("web-1",)
    other = parse_notification(payload(labels={"namespace": "shop", "pod": "db-1"})).alerts[0]
    assert alert_pods(other, "shop", selector, pods) == ()
    elsewhere = parse_notification(payload(labels={"namespace": "ops", "pod": "web-1"})).alerts[0]
    assert alert_pods(elsewhere, "shop", selector, pods) == ()
    no_pod = parse_notification(payload(labels={"alertname": "HighCPU"})).alerts[0]
    assert alert_pods(no_pod, "shop", selector, pods) is None  # all the session's pods
