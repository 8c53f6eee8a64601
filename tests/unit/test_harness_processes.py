"""The test kit's process groups: stopped once nothing in them runs any more."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from localcluster.processes import running_in_group, spawn, stop_group

# A leader whose child leaves it an orphan: the child is reaped by PID 1, not by the leader.
ORPHANING = """
import os, signal, time
if os.fork() == 0:
    time.sleep(60)
else:
    print("forked", flush=True)
    signal.pause()
"""


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_a_group_runs_until_its_members_exit_and_a_zombie_counts_as_exited(
    tmp_path: Path,
) -> None:
    leader = spawn(["sleep", "1"], tmp_path / "sleep.log")
    assert running_in_group(leader.pid) == [leader.pid]
    deadline = time.monotonic() + 10
    while _state(leader.pid) != "Z":  # exited, not reaped yet
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert running_in_group(leader.pid) == []
    leader.wait()


def test_stopping_a_group_ends_every_member_and_waits_for_no_reaper(tmp_path: Path) -> None:
    log = tmp_path / "orphaning.log"
    leader = spawn([sys.executable, "-c", ORPHANING], log)
    deadline = time.monotonic() + 10
    while "forked" not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(running_in_group(leader.pid)) == 2
    started = time.monotonic()
    stop_group(leader.pid)
    assert running_in_group(leader.pid) == []
    # SIGTERM ends both at once; no wait for PID 1 to reap the orphan (1.7-2.0 s here).
    assert time.monotonic() - started < 1.0
    assert leader.poll() is not None  # the leader is reaped by its parent, here
