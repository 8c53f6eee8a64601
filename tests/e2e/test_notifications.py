"""Webhooks told of captures: the operator reads each URL from a Secret and posts to a real HTTP
receiver on the loopback; a receiver that fails twice is told on the third try, and one that
never answers holds back no capture, ends as NotificationsDelivered=False and is counted; the
API server itself refuses a bad spec.notify."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from aiohttp import web
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.processes import free_port
from localcluster.sessions import (
    annotate_session,
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_captures,
    wait_running,
)

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
UI = "http://127.0.0.1:1/spikeprof"


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1: /flaky answers 503 twice and then 200, /silent never
    answers; every body posted is kept, by path."""

    port: int = field(default_factory=free_port)
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answered_at: dict[str, list[float]] = field(default_factory=dict)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _flaky(self, request: web.Request) -> web.Response:
        seen = self.bodies.setdefault("flaky", [])
        seen.append(await request.json())
        self.answered_at.setdefault("flaky", []).append(time.monotonic())
        return web.Response(status=503 if len(seen) <= 2 else 200, text="ok")

    async def _silent(self, request: web.Request) -> web.Response:
        self.bodies.setdefault("silent", []).append(await request.json())
        await self.closing.wait()  # accepts, reads, and never answers while the test runs
        return web.Response(status=200)

    def serve(self) -> Iterator[Receiver]:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/flaky", self._flaky)
        app.router.add_post("/silent", self._silent)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(self.closing.set)  # the /silent handlers waiting return
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from Receiver().serve()


@pytest.fixture
def notifying_operator(
    operator_process: OperatorProcess,
    receiver: Receiver,
    api: client.ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
) -> OperatorProcess:
    """The operator with short webhook tries, the webhooks' Secret, and one running pod."""
    operator_process.env.update(
        SPIKEPROF_NOTIFY_ATTEMPTS="3",
        SPIKEPROF_NOTIFY_TIMEOUT_SECONDS="2",
        SPIKEPROF_UI_URL=UI,
    )
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "hooks"},
            "stringData": {"flaky": receiver.url("flaky"), "silent": receiver.url("silent")},
        },
    )
    create_pod(api, namespace, "web-1", {"app": "web"})
    wait_running(api, namespace, "app=web", 1, wait_for)
    operator_process.start()
    return operator_process


def session(name: str, key: str, format: str) -> dict[str, Any]:
    return session_body(
        name,
        {
            "selector": {"matchLabels": {"app": "web"}},
            "target": {"kind": "pprof", "port": 7777, "access": "direct"},
            "profiles": [{"type": "heap"}, {"type": "goroutine"}],
            "trigger": {"immediate": True},
            "output": {"volume": {}},
            "notify": [{"secretRef": {"name": "hooks", "key": key}, "format": format}],
        },
    )


def delivered_condition(
    api: client.ApiClient, namespace: str, name: str, wait_for: Callable[..., Any], status: str
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        conditions = (get_session(api, namespace, name).get("status") or {}).get("conditions")
        condition = next(
            (c for c in conditions or () if c["type"] == "NotificationsDelivered"), None
        )
        return condition if condition and condition["status"] == status else None

    result: dict[str, Any] = wait_for(found, 60, f"NotificationsDelivered={status} on {name}")
    return result


def metric(operator: OperatorProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
    ) as reply:
        text = reply.read().decode()
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_webhook_failing_twice_gets_the_slack_message_on_the_third_try(
    notifying_operator: OperatorProcess,
    receiver: Receiver,
    api: client.ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
) -> None:
    create_session(api, namespace, session("told", "flaky", "slack"))
    status = wait_captures(api, namespace, "told", 1, wait_for)
    capture_id = status["lastCapture"]["id"]

    condition = delivered_condition(api, namespace, "told", wait_for, "True")
    assert condition["reason"] == "Delivered"
    assert condition["message"] == f"1 webhook(s) were told of capture {capture_id}."
    bodies = receiver.bodies["flaky"]
    assert len(bodies) == 3 and bodies[0] == bodies[2]  # the same message, tried again
    times = receiver.answered_at["flaky"]
    pauses = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert pauses[0] >= 0.9 and pauses[1] >= 1.9  # 1 s, then 2 s
    message = bodies[-1]
    assert set(message) == {"text", "blocks"}
    assert message["blocks"][0]["text"]["text"] == "spikeprof: capture succeeded"
    text = json.dumps(message)
    assert f"{namespace}/told" in text and "web-1" in text
    assert "immediate" in text
    assert "runtime." in text  # the goroutine profile's top functions are Go's runtime
    assert f"<{UI}/capture/{namespace}/told/web-1/{capture_id}|Open in spikeprof>" in text
    assert (
        metric(
            notifying_operator, "spikeprof_notifications_total", format="slack", result="delivered"
        )
        == 1
    )
    assert (
        metric(
            notifying_operator,
            "spikeprof_notification_attempts_total",
            format="slack",
            result="failed",
        )
        == 2
    )


def test_a_webhook_that_never_answers_holds_back_no_capture_and_is_reported(
    notifying_operator: OperatorProcess,
    receiver: Receiver,
    api: client.ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
) -> None:
    create_session(api, namespace, session("unheard", "silent", "json"))
    wait_captures(api, namespace, "unheard", 1, wait_for)
    # Its notification takes 2 + 1 + 2 + 2 + 2 = 9 s to give up; the next capture does not wait.
    asked = time.monotonic()
    annotate_session(api, namespace, "unheard", "spikeprof.io/capture-now", "again")
    status = wait_captures(api, namespace, "unheard", 2, wait_for)
    assert time.monotonic() - asked < 8
    conditions = {c["type"]: c for c in status.get("conditions") or ()}
    assert "NotificationsDelivered" not in conditions  # the first delivery is still trying

    condition = delivered_condition(api, namespace, "unheard", wait_for, "False")
    assert condition["reason"] == "DeliveryFailed"
    assert condition["message"].endswith(
        "Secret hooks key silent (json): no answer within 2s (after 3 tries)."
    )
    assert receiver.url("silent") not in condition["message"]
    first = receiver.bodies["silent"][0]
    assert first["event"] == "CaptureSucceeded"
    assert first["session"] == {"namespace": namespace, "name": "unheard"}
    assert first["pods"] == ["web-1"]
    assert {t["profile"] for t in first["top"]} == {"heap", "goroutine"}
    assert all(len(t["functions"]) <= 5 for t in first["top"])
    assert first["artifacts"][0].startswith(str(notifying_operator.artifact_root))
    wait_for(
        lambda: (
            metric(
                notifying_operator, "spikeprof_notifications_total", format="json", result="failed"
            )
            >= 1
        ),
        30,
        "the failed notification counted",
    )


def _notify_session(notify: Any) -> str:
    body = yaml.safe_load((REPO_ROOT / "examples" / "session-notify.yaml").read_text())
    body["spec"]["notify"] = notify
    return str(yaml.safe_dump(body))


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        (
            [{"secretRef": {"name": "h", "key": "u"}, "format": "teams"}],
            'spec.notify[0].format: Unsupported value: "teams": supported values: "json", "slack"',
        ),
        (
            [{"secretRef": {"name": "h", "key": "u"}}, {"secretRef": {"name": "h", "key": "u"}}],
            "notify lists the same Secret key twice: list each webhook once",
        ),
        ([{"secretRef": {"name": "h"}}], "spec.notify[0].secretRef.key: Required value"),
        (
            [{"secretRef": {"name": "h", "key": "a/b"}}],
            "spec.notify[0].secretRef.key in body should match '^[-._a-zA-Z0-9]+$'",
        ),
        ([{"format": "json"}], "spec.notify[0].secretRef: Required value"),
    ],
    ids=["format", "twice", "no-key", "bad-key", "no-secret"],
)
def test_the_api_server_refuses_a_bad_notify_with_a_specific_message(
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    notify: Any,
    message: str,
) -> None:
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", input=_notify_session(notify), check=False
    )
    assert result.returncode != 0, "the API server accepted a bad notify"
    assert message in result.stderr


def test_the_example_is_accepted_and_kubectl_explain_teaches_notify(
    namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "session-notify.yaml"))
    applied = yaml.safe_load(
        kubectl("get", "profs", "checkout-told", "-n", namespace, "-o", "yaml").stdout
    )
    assert applied["spec"]["notify"] == [
        {"format": "slack", "secretRef": {"name": "webhooks", "key": "slack"}},
        {"format": "json", "secretRef": {"name": "webhooks", "key": "oncall"}},
    ]
    # The default format is filled in by the API server.
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=_notify_session([{"secretRef": {"name": "webhooks", "key": "oncall"}}]),
    )
    applied = yaml.safe_load(
        kubectl("get", "profs", "checkout-told", "-n", namespace, "-o", "yaml").stdout
    )
    assert applied["spec"]["notify"][0]["format"] == "json"
    explained = kubectl("explain", "profilingsessions.spec.notify").stdout
    assert "Webhooks told when a capture ends" in explained
    assert "secretRef" in explained and "format" in explained
