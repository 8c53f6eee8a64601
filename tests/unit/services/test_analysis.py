"""Analysis in worker processes (services.analysis): real processes from a fork server."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from spikeprof.services.analysis import (
    NICENESS,
    AnalysisCrashedError,
    InProcesses,
    InThreads,
    analyser,
)


def _niceness_and_pid() -> tuple[int, int]:
    return os.nice(0), os.getpid()


def _exit_at_start() -> None:
    os._exit(3)  # as a worker that cannot start here would


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would


@pytest.fixture
def workers() -> Iterator[InProcesses]:
    pool = InProcesses(1)
    yield pool
    pool.close()


async def test_work_runs_in_another_process_at_a_lower_priority(workers: InProcesses) -> None:
    niceness, pid = await workers.run(_niceness_and_pid)
    assert pid != os.getpid()
    assert niceness == os.nice(0) + NICENESS


async def test_a_worker_that_dies_fails_its_work_and_the_next_runs_in_a_new_one(
    workers: InProcesses,
) -> None:
    _, first = await workers.run(_niceness_and_pid)
    with pytest.raises(AnalysisCrashedError, match="died"):
        await workers.run(_die)
    _, second = await workers.run(_niceness_and_pid)
    assert second not in (first, os.getpid())


async def test_no_processes_asked_for_means_the_operators_threads() -> None:
    threads = analyser(0)
    assert isinstance(threads, InThreads)
    _, pid = await threads.run(_niceness_and_pid)
    assert pid == os.getpid()


async def test_workers_that_die_as_they_start_leave_the_analysis_to_the_operators_threads() -> None:
    pool = InProcesses(1, initializer=_exit_at_start)
    try:
        _, pid = await pool.run(_niceness_and_pid)
        _, again = await pool.run(_niceness_and_pid)
    finally:
        pool.close()
    assert pid == again == os.getpid()
