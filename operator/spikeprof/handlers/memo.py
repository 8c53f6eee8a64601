"""kopf's memo, typed: it holds the operator's `Factory`, put there at start-up, and the
captures UI's server when the operator serves one.

kopf hands every handler a `memo` (a dict copied per resource); reading the factory through
`factory_of` gives mypy its type, so no handler works with untyped attributes.
"""

from __future__ import annotations

import kopf

from spikeprof.services.factory import Factory
from spikeprof.ui.server import UiServer

_KEY = "factory"
_UI_KEY = "ui"


def keep(memo: kopf.Memo, factory: Factory) -> None:
    memo[_KEY] = factory


def factory_of(memo: kopf.Memo) -> Factory:
    found = memo.get(_KEY)
    if not isinstance(found, Factory):
        raise RuntimeError("spikeprof's start-up handler has not built the operator's factory")
    return found


def keep_ui(memo: kopf.Memo, server: UiServer) -> None:
    memo[_UI_KEY] = server


def ui_of(memo: kopf.Memo) -> UiServer | None:
    found = memo.get(_UI_KEY)
    return found if isinstance(found, UiServer) else None
