"""Sample values in their units, printed the way `go tool pprof` prints them.

A copy of the rules in pprof's internal/measurement package (unit aliases, auto-scaling to the
largest unit that keeps a value at or above 1, two decimals, "0" for zero, and percentages with at
least two significant digits), so that our text reports read like pprof's, figure for figure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Unit:
    name: str
    aliases: tuple[str, ...]
    factor: float  # how many base units (bytes, nanoseconds, GCU) one of this unit is


@dataclass(frozen=True, slots=True)
class _UnitFamily:
    units: tuple[_Unit, ...]
    default: _Unit

    def find(self, unit: str) -> _Unit | None:
        # As pprof: case-insensitive, and one trailing "s" dropped ("Bytes", "nanoseconds").
        unit = unit.lower()
        if len(unit) > 2:
            unit = unit.removesuffix("s")
        for candidate in self.units:
            if unit in candidate.aliases:
                return candidate
        return None

    def auto_scale(self, value: float) -> tuple[float, str]:
        factor = 0.0
        name = ""
        for unit in self.units:
            if unit.factor >= factor and value / unit.factor >= 1.0:
                factor, name = unit.factor, unit.name
        if not factor:
            return value / self.default.factor, self.default.name
        return value / factor, name


_BYTES = _Unit("B", ("b", "byte"), 1)
_SECONDS = _Unit("s", ("s", "sec", "second"), 1e9)
_GCU = _Unit("GCU", ("gcu",), 1)
_FAMILIES = (
    _UnitFamily(
        (
            _BYTES,
            _Unit("kB", ("kb", "kbyte", "kilobyte"), float(1 << 10)),
            _Unit("MB", ("mb", "mbyte", "megabyte"), float(1 << 20)),
            _Unit("GB", ("gb", "gbyte", "gigabyte"), float(1 << 30)),
            _Unit("TB", ("tb", "tbyte", "terabyte"), float(1 << 40)),
            _Unit("PB", ("pb", "pbyte", "petabyte"), float(1 << 50)),
        ),
        _BYTES,
    ),
    _UnitFamily(
        (
            _Unit("ns", ("ns", "nanosecond"), 1),
            _Unit("us", ("μs", "us", "microsecond"), 1e3),
            _Unit("ms", ("ms", "millisecond"), 1e6),
            _SECONDS,
            _Unit("hrs", ("hour", "hr"), 3600e9),
        ),
        _Unit("s", (), 1e9),
    ),
    _UnitFamily(
        (
            _Unit("n*GCU", ("nanogcu",), 1e-9),
            _Unit("u*GCU", ("microgcu",), 1e-6),
            _Unit("m*GCU", ("milligcu",), 1e-3),
            _GCU,
            _Unit("k*GCU", ("kilogcu",), 1e3),
            _Unit("M*GCU", ("megagcu",), 1e6),
            _Unit("G*GCU", ("gigagcu",), 1e9),
            _Unit("T*GCU", ("teragcu",), 1e12),
            _Unit("P*GCU", ("petagcu",), 1e15),
        ),
        _Unit("GCU", (), 1),
    ),
)
_AUTO = ("minimum", "auto")
_UNITLESS = ("count", "sample", "unit", "minimum", "auto")


def scale(value: int, from_unit: str, to_unit: str) -> tuple[float, str]:
    """Value in to_unit ("auto"/"minimum": the best unit) and that unit's name ("" if none)."""
    if value < 0:
        scaled, name = scale(-value, from_unit, to_unit)
        return -scaled, name
    for family in _FAMILIES:
        source = family.find(from_unit)
        if source is None:
            continue
        base = value * source.factor
        if to_unit in _AUTO:
            return family.auto_scale(base)
        target = family.find(to_unit) or family.default
        return base / target.factor, target.name
    if to_unit in _UNITLESS:
        return float(value), ""
    return float(value), to_unit


def scaled_label(value: int, from_unit: str, to_unit: str = "auto") -> str:
    """A value as pprof prints it: "1.50s", "30317416B", "0", "502"."""
    if from_unit == "" and to_unit == "count":
        return str(value)
    scaled, name = scale(value, from_unit, to_unit)
    text = f"{scaled:.2f}".removesuffix(".00")
    if text in ("0", "-0"):
        return "0"
    return text + name


def percentage(value: int, total: int) -> str:
    """A share of the total as pprof prints it, 6 characters wide: "47.89%", "  100%", " 0.53%"."""
    ratio = abs(value / total) * 100 if total else 0.0
    if 99.95 <= ratio <= 100.05:
        return "  100%"
    if ratio >= 1.0:
        return f"{ratio:5.2f}%"
    return f"{ratio:5.2g}%"


def output_unit(sample_unit: str, smallest: int, largest: int) -> str:
    """The unit pprof's default `-unit=minimum` picks for a report's figures.

    smallest is the smallest non-zero figure shown, largest the total. Like pprof, when the two
    would print in different units and differ by more than 100 times, the unit of 100 x smallest
    is used, so small figures read as 0.01-ish rather than dragging every figure down.
    """
    if smallest == 0:
        smallest = largest
    _, small_unit = scale(smallest, sample_unit, "minimum")
    _, large_unit = scale(largest, sample_unit, "minimum")
    unit = small_unit
    if small_unit != large_unit and smallest * 100 < largest:
        _, unit = scale(100 * smallest, sample_unit, "minimum")
    return unit or sample_unit


def ladder(unit: str) -> tuple[tuple[str, float], ...]:
    """The units a value in `unit` can be shown in, each with its size in `unit`s, smallest first.

    For pprof's auto-scaling elsewhere (the flame graph's script): show a value in the largest
    unit it has at least one of. Empty for units pprof does not scale ("count", "goroutine").
    """
    for family in _FAMILIES:
        source = family.find(unit)
        if source is not None:
            return tuple(
                (candidate.name, candidate.factor / source.factor) for candidate in family.units
            )
    return ()
