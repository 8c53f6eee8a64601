"""Go durations ("1m30s") and Kubernetes quantities ("64Mi") as the CRD writes them."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(Ki|Mi|Gi|Ti|n|u|m|k|M|G|T)?$")
_QUANTITY_UNITS: dict[str | None, float] = {
    None: 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration such as "30s", "1m30s" or "250ms"; ValueError if malformed."""
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 1m30s or 250ms")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of a whole number of seconds, or milliseconds."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes and secs:
        return f"{minutes}m{secs}s"
    return f"{minutes}m" if minutes else f"{secs}s"


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity as a number: "1500m" is 1.5, "250000000n" 0.25, "1Ki" 1024."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 1.5, 64Mi or 1Gi")
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


def parse_bytes(text: str) -> int:
    """Bytes in a quantity such as "64Mi" or "1G"; ValueError if malformed."""
    try:
        return int(parse_quantity(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a byte quantity such as 64Mi or 1Gi") from None


def format_cores(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def format_bytes(n: float) -> str:
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"
