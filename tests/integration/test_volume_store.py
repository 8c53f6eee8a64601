"""The volume store publishes a pod's capture in one rename, and cleans up after crashes."""

from __future__ import annotations

import json
from pathlib import Path

from spikeprof.adapters.volume import VolumeStore
from spikeprof.core.artifact_key import ArtifactKey

KEY = ArtifactKey("shop", "checkout", "web-1", "20261126T010203.000Z-immediate")


def test_nothing_is_visible_until_commit_then_everything_is(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    staged = store.stage(KEY)
    staged.temp_path("cpu.pb.gz").write_bytes(b"profile")
    staged.keep("cpu.pb.gz")
    final = store.final_path(KEY)
    assert not final.exists()
    assert not store.is_complete(KEY)
    # What a reader listing the pod's directory sees before the commit: hidden names only.
    assert all(p.name.startswith(".") for p in final.parent.iterdir())

    staged.commit({"captureId": KEY.capture_id})
    assert store.is_complete(KEY)
    assert sorted(p.name for p in final.iterdir()) == ["cpu.pb.gz", "metadata.json"]
    assert json.loads((final / "metadata.json").read_text()) == {"captureId": KEY.capture_id}
    assert sorted(p.name for p in final.parent.iterdir()) == [KEY.capture_id]


def test_a_crashed_attempt_is_started_over_from_nothing(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    crashed = store.stage(KEY)
    crashed.temp_path("cpu.pb.gz").write_bytes(b"half a prof")
    # The process dies here; a restarted operator stages the same capture again.
    again = store.stage(KEY)
    assert list(again.staging.iterdir()) == []
    again.commit({})
    assert sorted(p.name for p in store.final_path(KEY).iterdir()) == ["metadata.json"]


def test_discard_leaves_no_trace(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    staged = store.stage(KEY)
    staged.temp_path("heap.pb.gz").write_bytes(b"x")
    staged.discard()
    assert list(store.final_path(KEY).parent.iterdir()) == []


def test_volume_retention_keeps_the_newest_captures_whole(tmp_path: Path) -> None:
    import asyncio
    import datetime

    from spikeprof.core.spec import parse_spec
    from spikeprof.services.outputs import SessionOutputs
    from spikeprof.settings import Settings

    store = VolumeStore(tmp_path)
    ids = [
        "20261126T010000.000Z-immediate",
        "20261126T020000.000Z-threshold",
        "20261126T030000.000Z-alert",
    ]
    for capture_id in ids:
        for pod in ("web-1", "web-2"):
            staged = store.stage(ArtifactKey("shop", "checkout", pod, capture_id))
            staged.commit({"captureId": capture_id})
    spec = parse_spec(
        {
            "selector": {"matchLabels": {"app": "web"}},
            "profiles": [{"type": "heap"}],
            "output": {"volume": {}, "retention": {"maxCount": 2}},
        }
    )

    async def no_secret(namespace: str, name: str) -> dict[str, str]:
        raise AssertionError("no object store, no secret")

    outputs = SessionOutputs(
        "shop", "checkout", tmp_path, no_secret, Settings.from_env({}).spool_max_bytes
    )
    now = datetime.datetime(2026, 11, 26, 4, 0, tzinfo=datetime.UTC)
    assert asyncio.run(outputs.settle(spec, now)) is None  # no object store: nothing to say
    kept = sorted(k.capture_id for k in store.published("shop", "checkout"))
    assert kept == [ids[1], ids[1], ids[2], ids[2]], "both pods of the two newest captures"
    assert sorted(p.name for p in (tmp_path / "shop" / "checkout" / "web-1").iterdir()) == ids[1:]


def test_a_paused_attempt_that_wakes_discards_only_its_own_staging(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    paused = store.stage(KEY)  # the old leader, then SIGSTOPped past its lease
    taken_over = store.stage(KEY)  # the new leader resumes the same capture
    taken_over.temp_path("cpu.pb.gz").write_bytes(b"profile")
    taken_over.keep("cpu.pb.gz")
    paused.discard()  # the old leader wakes, is fenced, and cleans up after itself
    taken_over.commit({})
    assert sorted(p.name for p in store.final_path(KEY).iterdir()) == ["cpu.pb.gz", "metadata.json"]


def test_staging_left_by_attempts_that_were_never_recorded_is_swept_and_nothing_else(
    tmp_path: Path,
) -> None:
    store = VolumeStore(tmp_path)
    published = store.stage(KEY)
    (published.staging / "heap.pb.gz").write_bytes(b"x")
    published.commit({"captureId": KEY.capture_id})
    other = ArtifactKey("shop", "checkout", "web-2", "20261126T010204.000Z-alert")
    left = store.stage(other)  # its process died before the capture's start was in status
    elsewhere = store.stage(ArtifactKey("shop", "cart", "web-1", "20261126T010205.000Z-alert"))
    assert store.discard_staging("shop", "checkout") == [left.staging]
    assert not left.staging.exists()
    assert store.is_complete(KEY) and elsewhere.staging.is_dir()
