"""Label selectors match as Kubernetes matches them, and an empty one matches nothing."""

from __future__ import annotations

from spikeprof.core.selector import LabelSelector


def test_match_labels_need_every_label() -> None:
    selector = LabelSelector.from_spec({"matchLabels": {"app": "web", "tier": "api"}})
    assert selector.matches({"app": "web", "tier": "api", "extra": "x"})
    assert not selector.matches({"app": "web"})


def test_match_expressions_follow_their_operators() -> None:
    selector = LabelSelector.from_spec(
        {
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["eu"]},
                {"key": "team", "operator": "Exists"},
            ]
        }
    )
    assert selector.matches({"app": "api", "team": "a"})
    assert selector.matches({"app": "web", "team": "a", "zone": "us"})
    assert not selector.matches({"app": "web", "team": "a", "zone": "eu"})
    assert not selector.matches({"app": "web", "team": "a", "canary": "1"})
    assert not selector.matches({"app": "db", "team": "a"})
    assert not selector.matches({"app": "web"})
    assert selector.describe() == "app in (api,web),!canary,zone notin (eu),team"


def test_an_empty_selector_matches_no_pod() -> None:
    selector = LabelSelector.from_spec({})
    assert selector.is_empty
    assert not selector.matches({"app": "web"})


def test_a_dapr_app_id_selects_by_the_pods_annotation() -> None:
    selector = LabelSelector.from_spec({"daprAppID": "checkout"})
    assert not selector.is_empty
    assert selector.matches({}, {"dapr.io/app-id": "checkout"})
    assert not selector.matches({}, {"dapr.io/app-id": "cart"})
    assert not selector.matches({"dapr.io/app-id": "checkout"}, {})  # an annotation, not a label
    assert selector.describe() == "Dapr app id checkout"
