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
