"""kopf's memo, typed: it holds one thing, the operator's `Factory`, put there at start-up.

kopf hands every handler a `memo` (a dict copied per resource); reading the factory through
`factory_of` gives mypy its type, so no handler works with untyped attributes.
"""

from __future__ import annotations

import kopf

from spikeprof.services.factory import Factory

_KEY = "factory"


def keep(memo: kopf.Memo, factory: Factory) -> None:
    memo[_KEY] = factory


def factory_of(memo: kopf.Memo) -> Factory:
    found = memo.get(_KEY)
    if not isinstance(found, Factory):
        raise RuntimeError("spikeprof's start-up handler has not built the operator's factory")
    return found
