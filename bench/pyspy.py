"""Where a Python process's CPU went over a window, from py-spy (if installed): the functions
that took the most, inclusive of callees and in the function itself."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Where the operator's threads wait (the event loop's epoll, the executor's idle workers).
WAITING = ("EpollSelector.select", "_PollLikeSelector.select", "_worker (", "Condition.wait")


def profile(pid: int, window: float, workdir: Path) -> list[dict[str, Any]]:
    """py-spy over one window: the functions that took the most CPU, inclusive of callees."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy is not installed (pip install py-spy)", flush=True)
        return []
    raw = workdir / "operator.pyspy"
    subprocess.run(
        [
            spy,
            "record",
            f"--pid={pid}",
            f"--duration={int(window)}",
            "--rate=1000",
            "--format=raw",
            f"--output={raw}",
            "--nonblocking",
        ],
        check=True,
        capture_output=True,
    )
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack.rsplit(";", 1)[-1].startswith(WAITING):
            continue  # py-spy takes a thread blocked in these for an active one
        total += int(count)
        # A frame reads "function (path/file.py:line)": kept as "function (file.py)".
        frames = {
            f"{function} ({where.rsplit('/', 1)[-1].split(':')[0]})"
            for function, _, where in (frame.partition(" (") for frame in stack.split(";"))
        }
        for frame in frames:
            inclusive[frame] += int(count)
        function, _, where = stack.rsplit(";", 1)[-1].partition(" (")
        own[f"{function} ({where.rsplit('/', 1)[-1].split(':')[0]})"] += int(count)
    hot = [
        {"function": frame, "share": round(samples / total, 3)}
        for frame, samples in inclusive.most_common(60)
        if samples < total
    ]
    print(f"py-spy: {total} samples in {window:g}s (raw stacks in {raw})")
    for entry in hot[:40]:
        print(f"  {entry['share']:6.1%}  {entry['function']}")
    print("py-spy: in the function itself")
    for frame, samples in own.most_common(25):
        print(f"  {samples / total:6.1%}  {frame}")
    return hot
