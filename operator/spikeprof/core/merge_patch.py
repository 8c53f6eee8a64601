"""JSON merge patches (RFC 7386), as the operator writes `.status`: applied and squashed.

A session's status patches may have to wait while the API server is away; the session's loop
must still see the status as it will be (`apply`), and waiting patches are squashed into one
where that changes nothing (`squash`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`target` after `patch`, as the API server applies it (neither argument is changed)."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            below = result.get(key)
            result[key] = apply(below if isinstance(below, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def squash(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any] | None:
    """One patch with the effect of `first` then `second` on any target, or None if none has.

    None when `first` replaces or deletes a value that `second` then patches as an object:
    `second` would merge into what `first` wrote, a single patch into what the target held.
    """
    result = dict(first)
    for key, value in second.items():
        earlier = first.get(key, _ABSENT)
        if isinstance(value, Mapping) and earlier is not _ABSENT:
            if not isinstance(earlier, Mapping):
                return None
            merged = squash(earlier, value)
            if merged is None:
                return None
            result[key] = merged
        else:
            result[key] = value
    return result


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `before` into `after` ({} when they are equal).

    Objects are compared key by key (a key gone is patched with null); anything else, lists
    included, is replaced whole. `after` holds no nulls: a merge patch could not write them.
    """
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        earlier = before.get(key, _ABSENT)
        if isinstance(value, Mapping) and isinstance(earlier, Mapping):
            below = diff(earlier, value)
            if below:
                patch[key] = below
        elif earlier != value:
            patch[key] = value
    return patch


_ABSENT = object()
