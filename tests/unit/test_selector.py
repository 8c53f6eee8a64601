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


def test_pod_names_choose_one_replica_among_pods_with_the_same_labels() -> None:
    selector = LabelSelector.from_spec({"matchLabels": {"app": "web"}, "podNames": ["web-2"]})
    assert selector.matches({"app": "web"}, {}, "web-2")
    assert not selector.matches({"app": "web"}, {}, "web-1")
    assert not selector.matches({"app": "db"}, {}, "web-2")
    assert not selector.matches({"app": "web"})  # a pod without a name is not named
    assert selector.describe() == "app=web,pod web-2"


def test_pod_names_alone_select_the_named_pods_whatever_their_labels() -> None:
    selector = LabelSelector.from_spec({"podNames": ["a", "b"]})
    assert not selector.is_empty
    assert selector.matches({}, {}, "a")
    assert selector.matches({"app": "x"}, {}, "b")
    assert not selector.matches({}, {}, "c")
    assert selector.describe() == "pod a or b"
