"""Parsing spec.notify: webhooks read as written, and every problem named by its field."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.spec import SpecError, WebhookSpec, parse_spec
from tests.unit.test_spec import spec


def test_webhooks_are_read_with_json_as_the_default_format() -> None:
    parsed = parse_spec(
        spec(
            notify=[
                {"secretRef": {"name": "hooks", "key": "team-a.url"}},
                {"secretRef": {"name": "hooks", "key": "slack"}, "format": "slack"},
            ]
        )
    )
    assert parsed.notify == (
        WebhookSpec("hooks", "team-a.url", "json"),
        WebhookSpec("hooks", "slack", "slack"),
    )
    assert parsed.notify[1].describe() == "Secret hooks key slack (slack)"


def test_a_session_without_notify_tells_no_one() -> None:
    assert parse_spec(spec()).notify == ()


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"secretRef": {}}, "spec.notify must be a list of webhooks"),
        (["x"], "spec.notify[0] must be an object with secretRef and format"),
        ([{"format": "json"}], "spec.notify[0].secretRef must name the Secret"),
        ([{"secretRef": {"key": "url"}}], "spec.notify[0].secretRef.name must name a Secret"),
        ([{"secretRef": {"name": "h"}}], "spec.notify[0].secretRef.key must be the Secret's key"),
        (
            [{"secretRef": {"name": "h", "key": "a/b"}}],
            "spec.notify[0].secretRef.key must be the Secret's key",
        ),
        (
            [{"secretRef": {"name": "h", "key": "u"}, "format": "teams"}],
            "spec.notify[0].format 'teams' is not one of json, slack",
        ),
        (
            [{"secretRef": {"name": "h", "key": "u"}}, {"secretRef": {"name": "h", "key": "u"}}],
            "spec.notify names the same Secret key twice",
        ),
        (
            [{"secretRef": {"name": "h", "key": f"k{i}"}} for i in range(9)],
            "spec.notify lists more than 8 webhooks",
        ),
    ],
)
def test_notify_problems_are_named_by_field(notify: Any, message: str) -> None:
    with pytest.raises(SpecError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(spec(notify=notify))
