"""JSON merge patches: applied as the API server does, squashed only where that is exact."""

from __future__ import annotations

import itertools
import random
from typing import Any

from spikeprof.core import merge_patch


def test_a_patch_sets_merges_and_deletes_keys() -> None:
    target = {
        "phase": "Armed",
        "captures": {"total": 1, "failed": 0},
        "pendingCapture": {"id": "a"},
    }
    patch = {"phase": "Capturing", "captures": {"total": 2}, "pendingCapture": None}
    assert merge_patch.apply(target, patch) == {
        "phase": "Capturing",
        "captures": {"total": 2, "failed": 0},
    }
    assert target["pendingCapture"] == {"id": "a"}  # the target is left as it was


def test_a_list_is_replaced_whole_and_an_object_patched_onto_a_scalar_replaces_it() -> None:
    assert merge_patch.apply({"c": [1, 2], "x": 3}, {"c": [3], "x": {"y": 1, "z": None}}) == {
        "c": [3],
        "x": {"y": 1},
    }


def test_a_capture_that_starts_and_ends_squashes_into_one_patch() -> None:
    started = {"phase": "Capturing", "pendingCapture": {"id": "c1", "pods": ["a"]}}
    finished = {"phase": "Armed", "pendingCapture": None, "captures": {"total": 1}}
    assert merge_patch.squash(started, finished) == {
        "phase": "Armed",
        "pendingCapture": None,
        "captures": {"total": 1},
    }


def test_an_object_written_after_its_deletion_is_not_squashed() -> None:
    # Applied in turn, the second capture's record replaces the old one; squashed, the new
    # record would be merged into whatever the target still held.
    assert merge_patch.squash({"pendingCapture": None}, {"pendingCapture": {"id": "c2"}}) is None


def _values(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(5 if depth else 3)
    if choice == 0:
        return None
    if choice == 1:
        return rng.randrange(3)
    if choice == 2:
        return [rng.randrange(3)]
    return {k: _values(rng, depth - 1) for k in rng.sample("abc", rng.randrange(1, 4))}


def _document(rng: random.Random) -> dict[str, Any]:
    drawn = _values(rng, 2)
    return drawn if isinstance(drawn, dict) else {"a": drawn}


def test_a_squashed_patch_has_the_effect_of_both_in_turn_on_any_target() -> None:
    rng = random.Random(7)
    squashed = 0
    for _ in itertools.repeat(None, 3000):
        target, first, second = _document(rng), _document(rng), _document(rng)
        target = merge_patch.apply({}, target)  # a stored document holds no nulls
        both = merge_patch.squash(first, second)
        if both is None:
            continue
        squashed += 1
        in_turn = merge_patch.apply(merge_patch.apply(target, first), second)
        assert merge_patch.apply(target, both) == in_turn, (target, first, second, both)
    assert squashed > 1000  # the check covered many squashable pairs, not only refusals


def test_a_diff_applied_gives_the_target_and_names_only_what_changed() -> None:
    before = {"a": 1, "gone": 2, "map": {"x": 1, "y": 2}, "list": [1, 2], "same": {"k": "v"}}
    after = {"a": 3, "map": {"x": 1, "z": 3}, "list": [1], "same": {"k": "v"}, "new": {"n": 1}}
    patch = merge_patch.diff(before, after)
    assert patch == {
        "a": 3,
        "gone": None,
        "map": {"y": None, "z": 3},
        "list": [1],
        "new": {"n": 1},
    }
    assert merge_patch.apply(before, patch) == after
    assert merge_patch.diff(after, after) == {}
