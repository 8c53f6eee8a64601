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
from spikeprof.errors import SpikeprofError

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
    # Work that must succeed before it is sent (a capture's end: its pods' commits).
    required: set[asyncio.Future[None]] = field(default_factory=set)
    # Settles when a flush has sent it (True), found the API server away (False: a new one
    # waits for the next attempt), or could not send it (the error).
    sent: asyncio.Future[bool] = field(default_factory=lambda: _attempt())

    def settle(self, written: bool | BaseException) -> None:
        """Tell who waits for this patch how the attempt went; later ones wait anew."""
        if isinstance(written, BaseException):
            self.sent.set_exception(written)
        else:
            self.sent.set_result(written)
        self.sent = _attempt()


def _attempt() -> asyncio.Future[bool]:
    attempt: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    # Its error is raised to its waiters, if any; none is owed to a patch nobody waits for.
    attempt.add_done_callback(lambda done: done.cancelled() or done.exception())
    return attempt


class NotWrittenError(SpikeprofError):
    """Work a queued patch required was cancelled: it and every patch behind it were dropped."""


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
        self._unsent: list[_Queued] = []  # the first may be on the wire (_sending)
        self._sending: _Queued | None = None  # never squashed into
        # Writers may overlap (a capture's end is written while the next look runs): one
        # flush at a time keeps the patches in order and each written once.
        self._flushing = asyncio.Lock()
        self._broken: Exception | None = None  # what required work raised
        self._flushes: set[asyncio.Task[bool]] = set()  # flush_soon's, kept from the GC
        self._sent: list[dict[str, Any]] = []  # written; kopf's copy may not show them yet
        self._sent_at = 0.0  # when the oldest of _sent was written
        self._away_since: float | None = None

    @property
    def waiting(self) -> int:
        """Patches not yet written."""
        return len(self._unsent)

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
        for waiting in self._unsent:
            current = merge_patch.apply(current, waiting.patch)
        return current

    def queue(
        self,
        patch: Mapping[str, Any],
        after: Iterable[asyncio.Future[None]] = (),
        required: Iterable[asyncio.Future[None]] = (),
    ) -> asyncio.Future[bool]:
        """Queue `patch` behind those waiting, for the next flush; `view` shows it at once.
        Returns what settles with the next attempt to send it (see _Queued.sent).

        `after`: other writes (the alert receiver's) that it must not land before; it is sent
        once they are done, whether they succeeded or not. `required`: work that must succeed
        first; if any fails, this patch and all behind it are dropped and every flush from
        then on raises what it raised (the session's loop stops, and the next one starts over
        from the stored status, as after a crash). It is squashed into the patch ahead of it
        when that waits for everything it does already (never making that one wait longer)."""
        waits = {written for written in after if not written.done()}
        needs = set(required)
        tail = self._unsent[-1] if self._unsent else None
        if tail is not None and tail is not self._sending and not needs and waits <= tail.after:
            squashed = merge_patch.squash(tail.patch, patch)
            if squashed is not None:
                tail.patch = squashed
                return tail.sent
        queued = _Queued(dict(patch), waits, needs)
        self._unsent.append(queued)
        return queued.sent

    @property
    def flushing(self) -> bool:
        """A flush is under way: what is queued now is written by it."""
        return self._flushing.locked()

    def flush_soon(self) -> None:
        """Flush in the background; what comes of it reaches those waiting on `queue`'s
        futures (and the next flush raises the same error)."""
        flushing = asyncio.create_task(self.flush())
        self._flushes.add(flushing)
        flushing.add_done_callback(self._flushed)

    def _flushed(self, flushing: asyncio.Task[bool]) -> None:
        self._flushes.discard(flushing)
        if not flushing.cancelled():
            flushing.exception()  # retrieved: said through the patches' futures

    async def flush(self) -> bool:
        """Write what waits, oldest first; False (all kept) while the API server is away."""
        async with self._flushing:
            if self._broken is not None:
                raise self._broken
            return await self._flush()

    async def _needed(self, head: _Queued) -> None:
        """Wait for what `head` needs; raise (breaking the outbox) if any of it failed."""
        while head.required:
            needed = head.required.pop()
            try:
                await asyncio.shield(needed)
            except BaseException as error:
                if not needed.done():  # this flush is cancelled, not the work it waits for
                    head.required.add(needed)
                    raise
                self._broken = (
                    error
                    if isinstance(error, Exception)
                    else NotWrittenError("work a status write waited for was cancelled")
                )
                for dropped in self._unsent:
                    dropped.settle(self._broken)
                self._unsent.clear()
                log.warning(
                    "The status of %s/%s is not written: %s",
                    self.namespace,
                    self.name,
                    self._broken,
                )
                raise self._broken from None

    async def _flush(self) -> bool:
        while self._unsent:
            head = self._unsent[0]
            while head.after:
                with contextlib.suppress(Exception):  # its writer answers for it
                    await asyncio.shield(head.after.pop())
            await self._needed(head)
            self._sending = head
            try:
                await self.writer.patch(self.namespace, self.name, head.patch)
            # The API server is away: keep the patch, and every later one behind it.
            except ApiUnavailableError as error:
                for waiting in self._unsent:
                    waiting.settle(False)
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
            except BaseException as error:
                if isinstance(error, Exception):
                    head.settle(error)
                raise
            finally:
                self._sending = None
            self._unsent.pop(0)
            if not self._sent:
                self._sent_at = self.clock()
            self._sent.append(head.patch)
            head.settle(True)
        if self._away_since is not None:
            log.info(
                "The status of %s/%s is written again, after %.1f s without the API server.",
                self.namespace,
                self.name,
                self.clock() - self._away_since,
            )
            self._away_since = None
        return True
