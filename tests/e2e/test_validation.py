"""The API server itself rejects nonsense sessions, each with a message a person understands."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import create_session, get_session, session_body, session_events

pytestmark = pytest.mark.e2e

VALID: dict[str, Any] = {
    "apiVersion": "spikeprof.io/v1alpha1",
    "kind": "ProfilingSession",
    "metadata": {"name": "candidate"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": [{"type": "cpu", "duration": "30s"}, {"type": "heap"}],
        "output": {"volume": {}},
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with the dotted `path` set to `value` (or removed, for ...)."""
    body = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node: Any = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is ...:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return body


INVALID = [
    ("no selector", _with("spec.selector", ...), "spec.selector: Required value"),
    (
        "empty selector",
        _with("spec.selector", {}),
        "selector must have at least one matchLabels entry, matchExpressions term or daprAppID",
    ),
    (
        "selector with an empty podNames only",
        _with("spec.selector", {"podNames": []}),
        "selector must have at least one matchLabels entry, matchExpressions term or daprAppID,"
        " or a podNames entry",
    ),
    (
        "empty pod name",
        _with("spec.selector", {"podNames": [""]}),
        "spec.selector.podNames[0]: Invalid value",
    ),
    (
        "In without values",
        _with("spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
        "operators In and NotIn need at least one value",
    ),
    ("no profiles", _with("spec.profiles", ...), "spec.profiles: Required value"),
    (
        "empty profiles",
        _with("spec.profiles", []),
        "spec.profiles: Invalid value: 0: spec.profiles in body should have at least 1 items",
    ),
    (
        "unknown profile type",
        _with("spec.profiles.1", {"type": "memory"}),
        'spec.profiles[1].type: Unsupported value: "memory"',
    ),
    (
        "cpu for 10 minutes",
        _with("spec.profiles.0.duration", "10m"),
        "profile duration must be between 1s and 5m",
    ),
    (
        "cpu for half a second",
        _with("spec.profiles.0.duration", "500ms"),
        "profile duration must be between 1s and 5m",
    ),
    (
        "duration in words",
        _with("spec.profiles.0.duration", "ten seconds"),
        "profile duration must be a Go duration such as 30s",
    ),
    (
        "duration on heap",
        _with("spec.profiles.1", {"type": "heap", "duration": "5s"}),
        "duration applies only to cpu and trace profiles",
    ),
    (
        "gc on cpu",
        _with("spec.profiles.0", {"type": "cpu", "gc": True}),
        "gc applies only to heap profiles",
    ),
    (
        "profile type twice",
        _with("spec.profiles.1", {"type": "cpu"}),
        'spec.profiles[1]: Duplicate value: {"type":"cpu"}',
    ),
    (
        "port out of range",
        _with("spec.target", {"port": 70000}),
        "spec.target.port: Invalid value: 70000: spec.target.port in body should be less than or equal to 65535",
    ),
    (
        "unknown target kind",
        _with("spec.target", {"kind": "java"}),
        'spec.target.kind: Unsupported value: "java"',
    ),
    (
        "unknown access",
        _with("spec.target", {"access": "ssh"}),
        'spec.target.access: Unsupported value: "ssh"',
    ),
    (
        "path without slash",
        _with("spec.target", {"pathPrefix": "debug/pprof"}),
        "spec.target.pathPrefix in body should match",
    ),
    (
        "maxProfileBytes too big",
        _with("spec.limits", {"maxProfileBytes": "2Gi"}),
        "maxProfileBytes must be a quantity between 1Ki and 1Gi, such as 64Mi",
    ),
    (
        "maxProfileBytes not a quantity",
        _with("spec.limits", {"maxProfileBytes": "lots"}),
        "maxProfileBytes must be a quantity between 1Ki and 1Gi",
    ),
    (
        "maxConcurrent zero",
        _with("spec.limits", {"maxConcurrent": 0}),
        "spec.limits.maxConcurrent in body should be greater than or equal to 1",
    ),
    ("fetchTimeout an hour", _with("spec.limits", {"fetchTimeout": "1h"}), "fetchTimeout must be"),
    ("no output", _with("spec.output", ...), "spec.output: Required value"),
    (
        "output without destination",
        _with("spec.output", {}),
        "output must say where artifacts go: set output.volume",
    ),
    (
        "negative threshold",
        _with("spec.trigger", {"thresholds": [{"metric": "cpu", "above": "-5"}]}),
        "above must not be negative: a threshold below zero would fire on every pod",
    ),
    (
        "negative spike minimum",
        _with(
            "spec.trigger",
            {"thresholds": [{"metric": "cpu", "spike": {"increasePercent": 50, "minimum": "-1"}}]},
        ),
        "spike.minimum must not be negative",
    ),
    (
        "predict on cpu",
        _with("spec.trigger", {"thresholds": [{"metric": "cpu", "predict": {"within": "2m"}}]}),
        "predict applies to metric memory only",
    ),
    (
        "predict with above",
        _with(
            "spec.trigger",
            {"thresholds": [{"metric": "memory", "above": "1Gi", "predict": {"within": "2m"}}]},
        ),
        "a threshold needs exactly one of above (a level), spike (a jump over the moving average)"
        " or predict (a trend reaching the limit)",
    ),
    (
        "predict with spike",
        _with(
            "spec.trigger",
            {
                "thresholds": [
                    {
                        "metric": "memory",
                        "spike": {"increasePercent": 50},
                        "predict": {"within": "2m"},
                    }
                ]
            },
        ),
        "a threshold needs exactly one of above",
    ),
    (
        "predict without within",
        _with("spec.trigger", {"thresholds": [{"metric": "memory", "predict": {"window": "1m"}}]}),
        "spec.trigger.thresholds[0].predict.within: Required value",
    ),
    (
        "predict within not a duration",
        _with(
            "spec.trigger", {"thresholds": [{"metric": "memory", "predict": {"within": "soon"}}]}
        ),
        "predict.within must be a duration between 1s and 1h, such as 2m",
    ),
    (
        "predict window of a day",
        _with(
            "spec.trigger",
            {"thresholds": [{"metric": "memory", "predict": {"within": "2m", "window": "24h"}}]},
        ),
        "predict.window must be a duration between 1s and 1h, such as 1m",
    ),
    (
        "predict with two samples",
        _with(
            "spec.trigger",
            {"thresholds": [{"metric": "memory", "predict": {"within": "2m", "minSamples": 2}}]},
        ),
        "spec.trigger.thresholds[0].predict.minSamples: Invalid value: 2",
    ),
    (
        "predict reaching the request",
        _with(
            "spec.trigger",
            {
                "thresholds": [
                    {"metric": "memory", "predict": {"within": "2m", "reaches": "request"}}
                ]
            },
        ),
        'spec.trigger.thresholds[0].predict.reaches: Unsupported value: "request"',
    ),
    (
        "label value with a space",
        _with("spec.selector", {"matchLabels": {"app": "a b"}}),
        "spec.selector.matchLabels: Invalid value: matchLabels values must be label values such as"
        " web or v1.2",
    ),
    (
        "label key with a space",
        _with("spec.selector", {"matchLabels": {"my app": "web"}}),
        "matchLabels keys must be label keys such as app or app.kubernetes.io/name",
    ),
    (
        "matchExpressions value with a space",
        _with(
            "spec.selector",
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "a b"]}]},
        ),
        "matchExpressions values must be label values",
    ),
    (
        "alert regex that does not compile",
        _with("spec.trigger", {"alerts": {"matchRegex": {"severity": "(unclosed"}}}),
        # CEL cannot ask whether a string is a regex; the rule's matches() compiles it, and the
        # API server reports RE2's reason with the rule's message.
        "missing closing ): `(unclosed` evaluating rule: matchRegex values must be regular"
        " expressions that compile",
    ),
    (
        "immediate as a word",
        _with("spec.trigger", {"immediate": "yes"}),
        'spec.trigger.immediate: Invalid value: "string": spec.trigger.immediate in body must be of type boolean: "string"',
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_api_server_rejects_invalid_session_with_a_specific_message(
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    body: dict[str, Any],
    message: str,
) -> None:
    result = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False)
    assert result.returncode != 0, "the API server accepted an invalid session"
    assert message in result.stderr


def test_a_selector_of_pod_names_alone_is_accepted(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # What `kubectl spikeprof capture POD` creates: one replica, whatever labels it shares.
    body = _with("spec.selector", {"podNames": ["web-7d9f-abcde"]})
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
    applied = yaml.safe_load(
        kubectl("get", "profs", "candidate", "-n", namespace, "-o", "yaml").stdout
    )
    assert applied["spec"]["selector"] == {"podNames": ["web-7d9f-abcde"]}


def test_the_valid_base_and_the_examples_are_accepted(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(VALID))
    applied = yaml.safe_load(
        kubectl("get", "profs", "candidate", "-n", namespace, "-o", "yaml").stdout
    )
    # Defaults the API server fills in, so a short spec is a complete one. target.access has
    # none: the operator picks direct for kind pprof and auto for kind dapr.
    assert applied["spec"]["target"] == {
        "kind": "pprof",
        "pathPrefix": "/debug/pprof",
        "enableProfiling": False,
        "dryRun": False,
    }
    assert applied["spec"]["limits"] == {
        "maxConcurrent": 4,
        "maxProfileBytes": "64Mi",
        "fetchTimeout": "30s",
        "cooldown": "10m",
    }
    assert applied["spec"]["trigger"] == {
        "immediate": False,
        "baseline": False,
        "metricsSource": "metricsServer",
    }


def test_a_regex_only_re2_accepts_fails_the_session_naming_the_field_and_the_reason(
    api: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
) -> None:
    # \p{Lu} compiles in RE2 (the API server's check, and Alertmanager's syntax) but not in
    # Python's re, which the operator matches alerts with: only the operator can refuse it.
    spec = {
        **VALID["spec"],
        "trigger": {"alerts": {"matchRegex": {"severity": r"\p{Lu}+"}}},
    }
    create_session(api, namespace, session_body("re2-only", spec))

    def failed() -> dict[str, Any] | None:
        status: dict[str, Any] = get_session(api, namespace, "re2-only").get("status") or {}
        return status if status.get("phase") == "Failed" else None

    status = wait_for(failed, 30, "the session to fail")
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), operator.log()
    assert ready["message"] == (
        "spec.trigger.alerts.matchRegex.severity: '\\\\p{Lu}+' is not a regex: "
        "bad escape \\p at position 0"
    )
    wait_for(
        lambda: (
            ("Warning", "InvalidSpec", ready["message"])
            in session_events(api, namespace, "re2-only")
        ),
        30,
        "the InvalidSpec event",
    )


def test_a_prediction_is_accepted_with_its_defaults_and_kubectl_explain_teaches_it(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    body = _with(
        "spec.trigger",
        {
            "metricsSource": "scrape",
            "thresholds": [{"name": "oom", "metric": "memory", "predict": {"within": "2m"}}],
        },
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
    applied = yaml.safe_load(
        kubectl("get", "profs", "candidate", "-n", namespace, "-o", "yaml").stdout
    )
    [rule] = applied["spec"]["trigger"]["thresholds"]
    assert rule["predict"] == {"reaches": "limit", "within": "2m", "window": "1m", "minSamples": 3}
    explained = kubectl("explain", "profilingsessions.spec.trigger.thresholds.predict").stdout
    assert "least-squares trend of the pod's" in explained
    assert "minSamples" in explained
