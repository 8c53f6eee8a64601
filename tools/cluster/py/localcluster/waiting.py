"""Waiting for a condition, the one way tests, benchmarks and the demo all wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeoutError(AssertionError):
    """The condition did not hold in time; the message says what was awaited and how long."""


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    every: float = 0.2,
    on_wait: Callable[[], None] | None = None,
) -> Any:
    """Call `predicate` every `every` seconds until it returns something truthy, and return it.

    `on_wait` runs after each wait (the demo prints progress dots with it).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
        if on_wait is not None:
            on_wait()
    raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
