"""The one base of every error spikeprof raises on purpose.

Each layer keeps its own errors next to the code that raises them (`core.spec.SpecError`,
`adapters.object_store.ObjectStoreError`, ...); they all derive from SpikeprofError, so a caller
that only needs to tell "spikeprof said no, and said why" from a bug catches one class. Errors
that stood for a built-in kind before keep it as a second base (SpecError is still a ValueError,
PortForwardError still an httpcore.ConnectError), so existing handlers of those kinds still match.

This module imports nothing of spikeprof: every layer, the pure core included, may import it.
"""

from __future__ import annotations


class SpikeprofError(Exception):
    """Something spikeprof cannot do, with a message that says what and why."""
