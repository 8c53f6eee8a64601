"""`go tool pprof -top`, run and read: the reference our summaries are checked against."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

# -unit values that make pprof print whole numbers of the sample unit, so its figures are exact:
# "ns" and "B" are spelt out; count units are printed whole by default.
EXACT_UNITS = {"nanoseconds": "ns", "bytes": "B"}

# "      flat  flat%   sum%        cum   cum%" then rows "%10s %s %s %10s %s  %s%s".
ROW = re.compile(r"^ *(\S+) +(\S+)% +(\S+)% +(\S+) +(\S+)%  (.*?)(?: \((?:partial-)?inline\))?$")


def go_tool_pprof(*args: str) -> str:
    """What `go tool pprof` prints with these arguments; a failure raises with its stderr."""
    result = subprocess.run(
        ["go", "tool", "pprof", *args], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise AssertionError(f"go tool pprof {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def pprof_rows(path: Path, sample_type: str, unit: str) -> list[tuple[str, int, str, int, str]]:
    """(function, flat, flat%, cum, cum%) of every function, as -top prints them, untrimmed."""
    args = ["-top", "-nodefraction=0", f"-sample_index={sample_type}"]
    suffix = EXACT_UNITS.get(unit, "")
    if suffix:
        args.append(f"-unit={suffix}")
    lines = go_tool_pprof(*args, str(path)).splitlines()
    header = next(
        n
        for n, line in enumerate(lines)
        if line.split() == ["flat", "flat%", "sum%", "cum", "cum%"]
    )
    rows = []
    for line in lines[header + 1 :]:
        match = ROW.match(line)
        assert match, f"unexpected -top line {line!r}"
        flat, flat_percent, _, cum, cum_percent, name = match.groups()
        rows.append(
            (
                name,
                int(flat.removesuffix(suffix)),
                flat_percent,
                int(cum.removesuffix(suffix)),
                cum_percent,
            )
        )
    return rows
