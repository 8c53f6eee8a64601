"""`spikeprof captures` reading straight from the object store the operator uploaded to (MinIO)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from localcluster.object_stores import BUCKET, CREDENTIALS, MinioServer

from spikeprof.cli import main
from spikeprof.services.uploader import Uploader
from tests.integration.test_captures_cli import _write_capture
from tests.unit.pprof_proto import ProfileBuilder, call_chain

NS, SESSION, POD = "shop", "checkout-now", "checkout-1"
CALM_ID = "20261126T010000.000Z-immediate"
SPIKE_ID = "20261126T010457.951Z-threshold"


def _cpu(parse_ms: int, hash_ms: int) -> bytes:
    builder = ProfileBuilder().sample_type("samples", "count").sample_type("cpu", "nanoseconds")
    call_chain(builder, ["main.main", "main.serve", "main.parse", "main.hash"])
    builder.sample([3, 2, 1], [parse_ms // 10, parse_ms * 1_000_000])
    builder.sample([4, 2, 1], [hash_ms // 10, hash_ms * 1_000_000])
    return builder.body()


@pytest.fixture
async def store_url(
    minio: MinioServer, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Two captures of one pod, uploaded by the operator's uploader; the CLI's credentials set."""
    spool = tmp_path / "spool"
    for parts, profile, trigger, when in (
        ((NS, SESSION, POD, CALM_ID), _cpu(100, 900), "immediate", "2026-11-26T01:00:00Z"),
        ((NS, SESSION, POD, SPIKE_ID), _cpu(900, 100), "threshold", "2026-11-26T01:04:57Z"),
    ):
        _write_capture(
            spool, parts, {"cpu": profile}, trigger=trigger, reason=trigger, requested_at=when
        )
    uploaded = await Uploader(spool, minio.store(prefix)).upload_pending()
    assert len(uploaded.uploaded) == 2
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/{prefix}"


def _cli(
    capsys: pytest.CaptureFixture[str], minio: MinioServer, url: str, *argv: str
) -> tuple[int, str, str]:
    command, *rest = argv
    where = ["--store", url, "--endpoint", minio.endpoint, "--allow-http"]
    status = main(["captures", command, *where, *rest])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_show_get_and_diff_read_the_bucket(
    minio: MinioServer, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = _cli(capsys, minio, store_url, "list", "-o", "json")
    assert status == 0, err
    assert [c["captureId"] for c in json.loads(out)["captures"]] == [CALM_ID, SPIKE_ID]

    spike = f"{NS}/{SESSION}/{POD}/20261126T0104"
    status, out, err = _cli(capsys, minio, store_url, "show", spike)
    assert status == 0, err
    assert "main.parse" in out.split("main.hash")[0]  # the hottest function first

    status, _, err = _cli(capsys, minio, store_url, "get", spike, "--to", str(tmp_path / "got"))
    assert status == 0, err
    got = tmp_path / "got"
    metadata = json.loads((got / "metadata.json").read_text())
    [cpu] = [p for p in metadata["profiles"] if "file" in p]
    assert hashlib.sha256((got / cpu["file"]).read_bytes()).hexdigest() == cpu["sha256"]
    assert (got / cpu["flamegraph"]).read_text().startswith("<!DOCTYPE html>")

    calm = f"{NS}/{SESSION}/{POD}/20261126T0100"
    status, out, err = _cli(capsys, minio, store_url, "diff", calm, spike, "-o", "json")
    assert status == 0, err
    assert json.loads(out)["gainers"][0]["function"] == "main.parse"


def test_wrong_credentials_are_refused_in_one_sentence(
    minio: MinioServer,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    status, out, err = _cli(capsys, minio, store_url, "list")
    assert status != 0 and out == ""
    assert err.count("\n") == 1 and store_url.split("/")[2] in err, err
    assert "refused the credentials" in err
