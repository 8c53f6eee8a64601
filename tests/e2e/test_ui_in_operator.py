"""The operator serves the captures UI over its own volume when SPIKEPROF_UI_PORT is set (the
chart's ui.enabled), asking for the bearer token of SPIKEPROF_UI_TOKEN_FILE."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.operator_process import OperatorProcess
from localcluster.processes import free_port
from localcluster.sessions import (
    capture_dirs,
    create_pod,
    create_session,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e

TOKEN = "ui-token-for-the-test"


def _get(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_operator_serves_its_captures_in_the_ui_to_callers_with_the_token(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    port = free_port()
    token_file = tmp_path / "ui-token"
    token_file.write_text(TOKEN + "\n")
    operator_process.env["SPIKEPROF_UI_PORT"] = str(port)
    operator_process.env["SPIKEPROF_UI_TOKEN_FILE"] = str(token_file)
    operator_process.start()

    create_pod(api, namespace, "ui-0", {"app": "ui"})
    wait_running(api, namespace, "app=ui", 1, wait_for)
    spec = {
        "selector": {"matchLabels": {"app": "ui"}},
        "target": {"kind": "pprof", "port": 7777},
        "profiles": [{"type": "heap"}, {"type": "goroutine"}],
        "trigger": {"immediate": True},
        "output": {"volume": {}},
    }
    create_session(api, namespace, session_body("ui-now", spec))
    wait_captures(api, namespace, "ui-now", 1, wait_for)
    [directory] = capture_dirs(operator_process.artifact_root)

    base = f"http://127.0.0.1:{port}"
    status, body = _get(f"{base}/", None)
    assert status == 401, body
    assert "ui-now" not in body

    status, body = _get(f"{base}/", TOKEN)
    assert status == 200, operator_process.log()
    assert "ui-now" in body and namespace in body

    capture = "/".join(directory.parts[-4:])
    status, body = _get(f"{base}/captures?namespace={namespace}&pod=ui-0", TOKEN)
    assert status == 200
    assert f'href="/capture/{capture}"' in body
    status, body = _get(f"{base}/capture/{capture}", TOKEN)
    assert status == 200, body
    assert "heap.pb.gz" in body and "goroutine.pb.gz" in body
    status, body = _get(f"{base}/files/{capture}/heap.flamegraph.html", TOKEN)
    assert status == 200
    assert body.lstrip().lower().startswith("<!doctype html>")
