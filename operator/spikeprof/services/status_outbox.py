"""One session's status writes, kept in order until the API server has them and kopf sees them.

While the API server is away (restarting, say), a session goes on capturing from its pods: the
pod cache knows them, and profiles come from the pods themselves. What it would write to
`.status` waits here, and is written, in order, at the first look after the API server answers.
Meanwhile the session's loop reads the status as it will be, so that a capture taken in the
outage counts for cooldowns and totals, and the loop does not take it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spikeprof.adapters.kube import ApiUnavailableError
from spikeprof.core import merge_patch

log = logging.getLogger("spikeprof.status")

SEEN_SECONDS = 30.0
"""How long a written patch still counts in `view` when kopf's copy of the status does not show
it. kopf's watch follows within a few seconds of a write; this only bounds a patch that the API
server stored in another form than it was sent (so it never looks "seen")."""


class StatusPatcher(Protocol):
    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a session's `.status` (adapters.kube.SessionStatusWriter)."""
        ...


@dataclass
class _Queued:
    """A patch waiting to be written, and the writes it must not land before."""

    patch: dict[str, Any]
    after: set[asyncio.Future[None]] = field(default_factory=set)


class StatusOutbox:
    def __init__(
        self,
        writer: StatusPatcher,
        namespace: str,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self._unsent: list[_Queued] = []
        # The patch being written now: never squashed into (it may be on the wire already).
        self._inflight: dict[str, Any] | None = None
        # Writers may overlap (a capture's end is written while the next look runs): one
        # flush at a time keeps the patches in order and each written once.
        self._flushing = asyncio.Lock()
        self._sent: list[dict[str, Any]] = []  # written; kopf's copy may not show them yet
        self._sent_at = 0.0  # when the oldest of _sent was written
        self._away_since: float | None = None

    @property
    def waiting(self) -> int:
        """Patches not yet written."""
        return len(self._unsent) + (self._inflight is not None)

    def view(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """`stored` (kopf's copy of the status) with every patch it may not show yet."""
        current = dict(stored)
        if self._sent:
            written = current
            for patch in self._sent:
                written = merge_patch.apply(written, patch)
            if written == current or self.clock() - self._sent_at > SEEN_SECONDS:
                self._sent.clear()  # kopf has seen them (or they were stored in another form)
            else:
                current = written
        if self._inflight is not None:
            current = merge_patch.apply(current, self._inflight)
        for waiting in self._unsent:
            current = merge_patch.apply(current, waiting.patch)
        return current

    async def write(self, patch: Mapping[str, Any]) -> bool:
        """Queue `patch` behind those waiting and write them all; False while the API is away.

        Other API errors (the session is gone, the patch is refused) are raised, as from the
        writer itself.
        """
        self.queue(patch)
        return await self.flush()

    def queue(self, patch: Mapping[str, Any], after: Iterable[asyncio.Future[None]] = ()) -> None:
        """Queue `patch` behind those waiting, for the next flush; `view` shows it at once.

        `after`: other writes (the alert receiver's) that it must not land before; it is sent
        once they are done, whether they succeeded or not. It is squashed into the patch ahead
        of it when that waits for them already (never making that one wait longer)."""
        waits = {written for written in after if not written.done()}
        tail = self._unsent[-1] if self._unsent else None
        if tail is not None and waits <= tail.after:
            squashed = merge_patch.squash(tail.patch, patch)
            if squashed is not None:
                tail.patch = squashed
                return
        self._unsent.append(_Queued(dict(patch), waits))

    async def flush(self) -> bool:
        """Write what waits, oldest first; False (all kept) while the API server is away."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        while self._unsent:
            head = self._unsent[0]
            while head.after:
                with contextlib.suppress(Exception):  # its writer answers for it
                    await asyncio.shield(head.after.pop())
            self._unsent.pop(0)
            patch = self._inflight = head.patch
            try:
                await self.writer.patch(self.namespace, self.name, patch)
            # The API server is away: keep the patch, and every later one behind it.
            except ApiUnavailableError as error:
                self._unsent.insert(0, head)
                if self._away_since is None:
                    self._away_since = self.clock()
                    log.warning(
                        "The status of %s/%s waits for the API server: %s",
                        self.namespace,
                        self.name,
                        error,
                    )
                return False
            # Refused, or cancelled: kept, first in line, for the next flush (or raised on).
            except BaseException:
                self._unsent.insert(0, head)
                raise
            finally:
                self._inflight = None
            if not self._sent:
                self._sent_at = self.clock()
            self._sent.append(patch)
        if self._away_since is not None:
            log.info(
                "The status of %s/%s is written again, after %.1f s without the API server.",
                self.namespace,
                self.name,
                self.clock() - self._away_since,
            )
            self._away_since = None
        return True
