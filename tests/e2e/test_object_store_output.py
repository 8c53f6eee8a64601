"""Sessions that upload to a real S3 server (MinIO): upload, retention, and an outage that loses
nothing and uploads nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.object_stores import ACCESS_KEY, BUCKET, SECRET_KEY, MinioServer, StoreServer
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    capture_dirs,
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_captures,
    wait_running,
)

pytestmark = pytest.mark.e2e


def _objects(minio: MinioServer, prefix: str) -> list[str]:
    return sorted(o.key for o in asyncio.run(minio.store(prefix).list_objects("")))


def _condition(api: client.ApiClient, namespace: str, kind: str) -> dict[str, Any] | None:
    conditions = get_session(api, namespace, "to-s3").get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), None)


def _start_s3_session(
    api: client.ApiClient,
    namespace: str,
    minio: MinioServer,
    wait_for: Callable[..., Any],
    *,
    prefix: str,
    profiles: list[str],
    **output: Any,
) -> None:
    """Credentials, one running pod (web-1), and session to-s3 uploading it under `prefix`."""
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "s3-creds"},
            "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        },
    )
    create_pod(api, namespace, "web-1", {"app": "web"})
    wait_running(api, namespace, "app=web", 1, wait_for)
    spec = {
        "selector": {"matchLabels": {"app": "web"}},
        "target": {"port": 7777},
        "profiles": [{"type": kind} for kind in profiles],
        "trigger": {"immediate": True},
        "output": {
            "objectStore": {
                "url": f"s3://{BUCKET}/{prefix}",
                "secretRef": {"name": "s3-creds"},
                "endpoint": minio.endpoint,
                "allowHttp": True,
            },
            **output,
        },
    }
    create_session(api, namespace, session_body("to-s3", spec))


def test_captures_go_to_the_bucket_keep_the_newest_and_survive_an_outage(
    namespace: str,
    api: client.ApiClient,
    operator: OperatorProcess,
    wait_for: Callable[..., Any],
    store_server_factory: Callable[[str], StoreServer],
) -> None:
    minio = store_server_factory("s3")
    assert isinstance(minio, MinioServer)
    prefix = f"e2e/{namespace}"
    _start_s3_session(
        api,
        namespace,
        minio,
        wait_for,
        prefix=prefix,
        profiles=["heap", "goroutine"],
        retention={"maxCount": 2},
    )
    wait_captures(api, namespace, "to-s3", 1, wait_for)
    uploaded = wait_for(
        lambda: (
            (c := _condition(api, namespace, "ArtifactsUploaded")) and c["status"] == "True" and c
        ),
        60,
        "ArtifactsUploaded",
    )
    assert uploaded["reason"] == "Uploaded"
    first = _objects(minio, prefix)
    assert [k.rsplit("/", 1)[1] for k in first] == [
        "goroutine.pb.gz",
        "heap.flamegraph.html",
        "heap.pb.gz",
        "metadata.json",
    ]
    assert all(k.startswith(f"{namespace}/to-s3/web-1/") for k in first)
    # Without output.volume, the operator's volume only spools: the capture left it.
    assert capture_dirs(operator.artifact_root) == []

    # Outage: the store goes away; a capture is still taken, kept, and reported as waiting.
    minio.stop()
    annotate_session(api, namespace, "to-s3", "spikeprof.io/capture-now", "during-outage")
    wait_captures(api, namespace, "to-s3", 2, wait_for)
    # A pass may notice the outage (retention cannot list) before the capture is spooled: wait
    # for the pass that counts the waiting capture.
    waiting = wait_for(
        lambda: (
            (c := _condition(api, namespace, "ArtifactsUploaded"))
            and c["status"] == "False"
            and "1 capture(s)" in c["message"]
            and c
        ),
        60,
        "ArtifactsUploaded=False with the waiting capture",
    )
    assert waiting["reason"] in ("StoreUnreachable", "Spooling")
    assert "waiting for the object store" in waiting["message"]
    assert len(capture_dirs(operator.artifact_root)) == 1, "spooled on the volume"

    minio.start()
    writes_before = len(minio.audit.writes(prefix))
    wait_for(
        lambda: (c := _condition(api, namespace, "ArtifactsUploaded")) and c["status"] == "True",
        60,
        "the upload after the outage",
    )
    keys = _objects(minio, prefix)
    captures = sorted({k.split("/")[3] for k in keys})
    assert len(captures) == 2 and captures[1].endswith("-capture-now")
    assert capture_dirs(operator.artifact_root) == []
    time.sleep(2)
    asyncio.run(minio.settle())
    # Each file of the spooled capture was written once: 4 objects, no second PUT.
    assert len(minio.audit.writes(prefix)) - writes_before == 4

    # Retention keeps the newest 2: a third capture pushes out the first.
    annotate_session(api, namespace, "to-s3", "spikeprof.io/capture-now", "third")
    wait_captures(api, namespace, "to-s3", 3, wait_for)

    def two_newest() -> list[str] | None:
        ids = sorted({k.split("/")[3] for k in _objects(minio, prefix)})
        return ids if len(ids) == 2 and ids[0] == captures[1] else None

    assert wait_for(two_newest, 60, "retention to keep the newest 2")[1].endswith("-capture-now")


def test_a_full_spool_refuses_new_captures_and_keeps_the_waiting_ones(
    namespace: str,
    api: client.ApiClient,
    operator_process: OperatorProcess,
    wait_for: Callable[..., Any],
    store_server_factory: Callable[[str], StoreServer],
) -> None:
    operator = operator_process
    operator.env["SPIKEPROF_SPOOL_MAX_BYTES"] = "1"  # one waiting capture fills it
    operator.start()
    minio = store_server_factory("s3")
    assert isinstance(minio, MinioServer)
    minio.stop()  # the store is away from the start
    _start_s3_session(
        api, namespace, minio, wait_for, prefix=f"full/{namespace}", profiles=["goroutine"]
    )
    status = wait_captures(api, namespace, "to-s3", 1, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded"  # taken, and waiting in the spool
    [waiting] = capture_dirs(operator.artifact_root)

    annotate_session(api, namespace, "to-s3", "spikeprof.io/capture-now", "while-full")
    status = wait_captures(api, namespace, "to-s3", 2, wait_for)
    refused = status["lastCapture"]
    assert (refused["result"], refused["pods"]) == ("Failed", 0)
    assert "new captures are refused until the store takes some" in refused["message"]
    assert capture_dirs(operator.artifact_root) == [waiting]  # kept, nothing added

    minio.start()
    wait_for(
        lambda: (c := _condition(api, namespace, "ArtifactsUploaded")) and c["status"] == "True",
        60,
        "the waiting capture uploaded",
    )
    annotate_session(api, namespace, "to-s3", "spikeprof.io/capture-now", "room-again")
    status = wait_captures(api, namespace, "to-s3", 3, wait_for)
    assert status["lastCapture"]["result"] == "Succeeded", status["lastCapture"]
    assert status["captures"] == {"total": 3, "failed": 1, "profiles": 2, "profilesFailed": 0}
