"""Where captured profiles are analysed: in worker processes at a lower CPU priority.

Decoding a profile, summarising it and drawing its flame graph is pure CPU work. In the
operator's threads it holds the GIL, and the event loop, which sends the next pod's first profile
request and answers Alertmanager, waits for it: during an alert burst the loop stalled for more
than 10 ms about 50 times in 10 s with analysis in threads, and about 15 times with it in
processes at nice +10 (bench/alert_latency.py, 50 alerts/s). A worker process at a lower
priority takes only the CPU the loop and the API server do not want, and no lock of theirs.

A worker that dies (killed for memory on a huge profile) fails the analyses in flight (the pool
stops all its workers): they end with `AnalysisCrashedError`, their raw profiles stay kept
without a summary, and the next analysis runs in a pool made anew. Besides the workers there
are the fork server they start from and multiprocessing's resource tracker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

from spikeprof.errors import SpikeprofError

log = logging.getLogger("spikeprof.analysis")

T = TypeVar("T")

NICENESS = 10
"""Added to a worker's nice value: it yields the CPU to the operator's loop (nice 0)."""


class AnalysisCrashedError(SpikeprofError):
    """The process analysing a profile died before it answered."""


class Analyser(Protocol):
    async def run(self, work: Callable[..., T], *args: object) -> T: ...

    def close(self) -> None: ...


class InThreads:
    """Analysis in the operator's own worker threads (tests, the CLI, and processes turned off)."""

    async def run(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(work, *args)

    def close(self) -> None:
        pass


WORK_MODULES = ["spikeprof.services.readable"]
"""What the fork server imports once, for the workers it forks. A worker also imports the script
that started the operator (multiprocessing's spawn preparation): `spikeprof.cli` imports its
commands' modules only when they run, so that this stays small."""


def _lower_priority() -> None:
    """A worker's start: lower its priority."""
    os.nice(NICENESS)


def _ready() -> int:
    return os.getpid()


class InProcesses:
    """Analysis in `workers` processes, started from a fork server (a clean interpreter: the
    operator's threads and sockets are never forked)."""

    def __init__(self, workers: int, initializer: Callable[[], None] = _lower_priority) -> None:
        self.workers = workers
        self.initializer = initializer
        # No worker has answered yet. A pool that breaks before one has cannot start workers
        # here at all (they die as they start): analysis then stays in the operator's threads.
        self.worked = False
        self.in_threads = False
        self._pool = self._start()

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(WORK_MODULES)
        pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=self.initializer
        )
        # Start every worker now: the first burst must not wait for interpreters to start.
        for _ in range(self.workers):
            pool.submit(_ready).add_done_callback(self._answered)
        return pool

    def _answered(self, ready: concurrent.futures.Future[int]) -> None:
        if not ready.cancelled() and ready.exception() is None:
            self.worked = True

    async def run(self, work: Callable[..., T], *args: object) -> T:
        pool = self._pool
        if not self.in_threads:
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
            except BrokenProcessPool:
                if self.worked:
                    self._renew(pool)
                    raise AnalysisCrashedError(
                        "the process analysing the profile died (killed for memory?); the raw "
                        "profile is kept"
                    ) from None
                if not self.in_threads:
                    log.warning("analysis processes die as they start; analysing in threads")
                    self.in_threads = True
                    pool.shutdown(wait=False, cancel_futures=True)
        return await asyncio.to_thread(work, *args)

    def _renew(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """A new pool for the next analyses, once per broken one (the first to hear of it)."""
        if self._pool is not broken:
            return
        log.warning("an analysis process died; starting new ones")
        broken.shutdown(wait=False, cancel_futures=True)
        try:
            self._pool = self._start()
        except OSError as error:  # the next analysis tries again
            log.warning("analysis processes cannot start again yet: %s", error)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def analyser(processes: int) -> Analyser:
    """Worker processes when asked for and possible; the operator's threads otherwise."""
    if processes == 0:
        return InThreads()
    try:
        return InProcesses(processes)
    except OSError as error:  # no fork server here (no writable temporary directory, ...)
        log.warning("analysing profiles in threads: no worker processes (%s)", error)
        return InThreads()
