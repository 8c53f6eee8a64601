"""Captures when an alert fires: a real Prometheus and Alertmanager post to the operator, bad
payloads are refused with their reason, re-sends capture once, and a crash loses nothing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.peers import Alertmanager, Prometheus
from localcluster.sessions import (
    capture_dirs,
    control,
    create_pod,
    create_session,
    get_session,
    session_events,
    wait_captures,
    wait_running,
)

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
TOKEN = "s3cret-alerts-token"


def _example_session() -> dict[str, Any]:
    session: dict[str, Any] = yaml.safe_load(
        (REPO_ROOT / "examples" / "session-on-alert.yaml").read_text()
    )
    session["spec"]["profiles"] = [{"type": "cpu", "duration": "2s"}, {"type": "goroutine"}]
    return session


def _post(
    operator: OperatorProcess, body: bytes | dict[str, Any], token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{operator.alerts_port}/alerts",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _notification(
    namespace: str, pod: str | None, status: str = "firing", starts: str = "2026-11-26T01:00:00Z"
) -> dict[str, Any]:
    labels = {"alertname": "GoProcessCPUHigh", "spikeprof": "capture", "namespace": namespace}
    if pod is not None:
        labels["pod"] = pod
    return {
        "version": "4",
        "status": status,
        "groupKey": '{}:{alertname="GoProcessCPUHigh"}',
        "receiver": "spikeprof",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "hot"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"fp-{pod}",
            }
        ],
    }


def _armed(
    api: client.ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
    pods: list[str],
    session: dict[str, Any],
) -> dict[str, str]:
    """Running `checkout` pods and the session, once it reports Armed; pod name -> IP."""
    for name in pods:
        create_pod(api, namespace, name, {"app": "checkout"})
    ips: dict[str, str] = wait_running(api, namespace, "app=checkout", len(pods), wait_for)
    create_session(api, namespace, session)
    wait_for(
        lambda: (
            get_session(api, namespace, "checkout-on-alert").get("status", {}).get("phase")
            == "Armed"
        ),
        30,
        "Armed",
    )
    return ips


def _start_with_token(operator_process: OperatorProcess, tmp_path: Path) -> OperatorProcess:
    token_file = tmp_path / "alerts-token"
    token_file.write_text(TOKEN + "\n")
    operator_process.env["SPIKEPROF_ALERTS_TOKEN_FILE"] = str(token_file)
    operator_process.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{operator_process.alerts_port}/healthz", timeout=1
            ):
                return operator_process
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the alert receiver did not start:\n" + operator_process.log()[-2000:])


BAD = [
    ("not json", b"{nope", TOKEN, 400, "the body is not JSON"),
    (
        "wrong version",
        {"version": "3", "status": "firing", "groupKey": "g", "alerts": []},
        TOKEN,
        400,
        "version '3' is not supported: expected \"4\"",
    ),
    (
        "no alerts",
        {"version": "4", "status": "firing", "groupKey": "g"},
        TOKEN,
        400,
        "payload.alerts is missing or not a list",
    ),
    (
        "no groupKey",
        {"version": "4", "status": "firing", "alerts": []},
        TOKEN,
        400,
        "payload.groupKey is missing or not a string",
    ),
    (
        "alert without fingerprint",
        {
            "version": "4",
            "status": "firing",
            "groupKey": "g",
            "alerts": [{"status": "firing", "labels": {}, "startsAt": "t"}],
        },
        TOKEN,
        400,
        "alerts[0].fingerprint is missing or not a string",
    ),
    (
        "labels not strings",
        {
            "version": "4",
            "status": "firing",
            "groupKey": "g",
            "alerts": [
                {"status": "firing", "labels": {"a": 1}, "startsAt": "t", "fingerprint": "f"}
            ],
        },
        TOKEN,
        400,
        "alerts[0].labels must be an object of string values",
    ),
    ("a JSON list", [1, 2], TOKEN, 400, "the body must be a JSON object"),
    (
        "over the size limit",
        b"{" + b" " * (1 << 20) + b"}",
        TOKEN,
        413,
        "the limit is 1048576 bytes",
    ),
    ("no token", {"version": "4"}, None, 401, "missing or wrong bearer token"),
    ("wrong token", {"version": "4"}, "guess", 401, "missing or wrong bearer token"),
]


def test_bad_payloads_are_refused_with_their_reason_and_change_nothing(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    operator = _start_with_token(operator_process, tmp_path)
    _armed(api, namespace, wait_for, ["checkout-1"], _example_session())
    for what, body, token, code, message in BAD:
        status, reply = _post(operator, body, token)
        assert (status, message in reply.get("error", "")) == (code, True), (
            f"{what}: {status} {reply}"
        )
    status = get_session(api, namespace, "checkout-on-alert")["status"]
    assert "pendingAlerts" not in status or not status["pendingAlerts"]
    assert status.get("captures", {}).get("total", 0) == 0
    assert capture_dirs(operator.artifact_root) == []
    # After all that, a good notification still works.
    code, reply = _post(operator, _notification(namespace, "checkout-1"))
    assert code == 200
    assert reply["result"] == "recorded 1, duplicates 0, unmatched 0, resolved 0"
    wait_captures(api, namespace, "checkout-on-alert", 1, wait_for)


def test_re_sends_capture_once_and_resolved_alerts_capture_nothing(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    operator = _start_with_token(operator_process, tmp_path)
    _armed(api, namespace, wait_for, ["checkout-1", "checkout-2"], _example_session())

    code, reply = _post(operator, _notification(namespace, "checkout-1"))
    assert (code, reply["result"]) == (200, "recorded 1, duplicates 0, unmatched 0, resolved 0")
    status = wait_captures(api, namespace, "checkout-on-alert", 1, wait_for)
    assert status["lastCapture"]["trigger"] == "alert"
    assert status["lastCapture"]["reason"] == "alert GoProcessCPUHigh fired (1 notification(s))"
    assert [d.parent.name for d in capture_dirs(operator.artifact_root)] == ["checkout-1"]
    assert status["alertsHandled"] == ["fp-checkout-1@2026-11-26T01:00:00Z"]

    # Alertmanager re-sends the same firing alert every group_interval: it is a duplicate.
    code, reply = _post(operator, _notification(namespace, "checkout-1"))
    assert (code, reply["result"]) == (200, "recorded 0, duplicates 1, unmatched 0, resolved 0")
    # Resolved: nothing. Another namespace, or a pod the session does not select: unmatched.
    code, reply = _post(operator, _notification(namespace, "checkout-1", status="resolved"))
    assert (code, reply["result"]) == (200, "recorded 0, duplicates 0, unmatched 0, resolved 1")
    code, reply = _post(operator, _notification("elsewhere", "checkout-2"))
    assert (code, reply["result"]) == (200, "recorded 0, duplicates 0, unmatched 1, resolved 0")
    code, reply = _post(operator, _notification(namespace, "not-selected"))
    assert (code, reply["result"]) == (200, "recorded 0, duplicates 0, unmatched 1, resolved 0")

    # A new occurrence of the alert on the captured pod meets its cooldown.
    code, _ = _post(operator, _notification(namespace, "checkout-1", starts="2026-11-26T02:00:00Z"))
    assert code == 200
    suppressed = wait_for(
        lambda: get_session(api, namespace, "checkout-on-alert")["status"].get("suppressed"),
        30,
        "suppression",
    )
    assert suppressed["last"]["guard"] == "Cooldown"
    time.sleep(2)
    final = get_session(api, namespace, "checkout-on-alert")["status"]
    assert final["captures"]["total"] == 1
    assert not final.get("pendingAlerts")
    reasons = [r for _, r, _ in session_events(api, namespace, "checkout-on-alert")]
    assert "CaptureSuppressed" in reasons


def test_an_operator_killed_right_after_answering_still_captures_once(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    operator = _start_with_token(operator_process, tmp_path)
    session = _example_session()
    session["spec"]["profiles"] = [{"type": "cpu", "duration": "3s"}]
    _armed(api, namespace, wait_for, ["checkout-1"], session)

    code, _ = _post(operator, _notification(namespace, "checkout-1"))
    operator.kill()  # right after the 2xx: the capture cannot have finished (3s CPU profile)
    assert code == 200
    pending = get_session(api, namespace, "checkout-on-alert")["status"].get("pendingAlerts")
    assert list(pending) == ["fp-checkout-1@2026-11-26T01:00:00Z"], "recorded before the answer"
    assert capture_dirs(operator.artifact_root) == []

    operator.start()
    status = wait_captures(api, namespace, "checkout-on-alert", 1, wait_for)
    time.sleep(3)
    status = get_session(api, namespace, "checkout-on-alert")["status"]
    assert status["captures"]["total"] == 1
    assert not status.get("pendingAlerts")
    assert len(capture_dirs(operator.artifact_root)) == 1


def test_a_real_prometheus_and_alertmanager_drive_a_capture(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    operator = _start_with_token(operator_process, tmp_path)
    for name in ("checkout-1", "checkout-2"):
        create_pod(api, namespace, name, {"app": "checkout"})
    ips = wait_running(api, namespace, "app=checkout", 2, wait_for)
    create_session(api, namespace, _example_session())

    # The example route, pointed at this operator, with its token, and quick to send.
    am_config = yaml.safe_load(
        (REPO_ROOT / "examples" / "alerting" / "alertmanager.yaml").read_text()
    )
    route = am_config["route"]["routes"][0]
    route.update(group_wait="1s", group_interval="5s")
    hook = am_config["receivers"][1]["webhook_configs"][0]
    hook["url"] = f"http://127.0.0.1:{operator.alerts_port}/alerts"
    hook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "alerts-token")
    alertmanager = Alertmanager(tmp_path / "alertmanager", am_config)
    alertmanager.start()
    # The example rules, with `for` and the rate window shortened to fit a test.
    rules = yaml.safe_load(
        (REPO_ROOT / "examples" / "alerting" / "prometheus-rules.yaml").read_text()
    )
    for rule in rules["groups"][0]["rules"]:
        rule["for"] = "2s"
        rule["expr"] = rule["expr"].replace("[1m]", "[3s]").replace("> 0.8", "> 0.3")
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump(rules))
    prometheus = Prometheus(tmp_path / "prometheus", namespace)
    prometheus.start(rule_files=[rule_file], alertmanager=alertmanager.url)
    prometheus.set_targets(ips)
    try:
        time.sleep(3)
        assert capture_dirs(operator.artifact_root) == [], "calm pods raise no alert"
        control(ips["checkout-2"], "burn?cores=1&seconds=120")
        status = wait_captures(api, namespace, "checkout-on-alert", 1, wait_for, timeout=120)
        assert status["lastCapture"]["trigger"] == "alert"
        assert "GoProcessCPUHigh" in status["lastCapture"]["reason"]
        assert [d.parent.name for d in capture_dirs(operator.artifact_root)] == ["checkout-2"]
    finally:
        prometheus.stop()
        alertmanager.stop()
