"""Our summaries of real profiles say what `go tool pprof -top` says about the same files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spikeprof.pprof.profile import decode_file
from spikeprof.pprof.summary import render_top, summarize
from spikeprof.pprof.units import percentage
from tests.pprof_top import pprof_rows

PROFILE_NAMES = (
    "cpu",
    "heap",
    "allocs",
    "goroutine",
    "threadcreate",
    "block",
    "synth-cpu",
    "synth-heap",
)


@pytest.fixture(scope="module")
def profiles(target_profiles: dict[str, Path], synth_profiles: dict[str, Path]) -> dict[str, Path]:
    return {**target_profiles, **synth_profiles}


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_function_has_go_tool_pprofs_flat_and_cum_for_every_sample_type(
    profiles: dict[str, Path], go_tool_pprof: Callable[..., str], name: str
) -> None:
    path = profiles[name]
    summary = summarize(decode_file(path))
    for by_type in summary.sample_types:
        expected = pprof_rows(path, by_type.sample_type.type, by_type.sample_type.unit)
        assert expected or name == "block", f"pprof shows no function of {by_type.sample_type.type}"
        ours = [(row.function, row.flat, row.cum) for row in by_type.functions]
        assert ours == [(function, flat, cum) for function, flat, _, cum, _ in expected]

        rows = by_type.to_json(top=None)["functions"]
        for function, row, (_, _, flat_percent, _, cum_percent) in zip(
            by_type.functions, rows, expected, strict=True
        ):
            for value, ours_percent, printed in (
                (function.flat, row["flatPercent"], flat_percent),
                (function.cum, row["cumPercent"], cum_percent),
            ):
                # pprof picks its format by the exact share ("  100%", "%5.2f%%" from 1%,
                # "%5.2g%%" under it, so 0.9996% prints "1"): ours renders the same characters.
                assert percentage(value, by_type.total) == f"{printed:>5}%"
                exact = abs(value) / by_type.total * 100
                if 1 <= exact < 99.95:
                    # Both round the same double to two decimals: the same digits.
                    assert f"{ours_percent:.2f}" == printed
                elif exact < 1:
                    # pprof prints two significant digits under 1% ("0.014"), the JSON keeps two
                    # decimals (0.01): each is within half its last digit of the true value.
                    assert abs(ours_percent - float(printed)) <= 0.01
                else:
                    assert printed == "100" and 99.95 <= ours_percent <= 100.05


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_the_default_sample_type_is_the_one_go_tool_pprof_shows(
    profiles: dict[str, Path], go_tool_pprof: Callable[..., str], name: str
) -> None:
    shown = go_tool_pprof("-top", "-nodecount=1", str(profiles[name]))
    type_line = next(line for line in shown.splitlines() if line.startswith("Type: "))
    assert summarize(
        decode_file(profiles[name])
    ).default.sample_type.type == type_line.removeprefix("Type: ")


def test_a_burning_process_has_burn_cpu_on_top_of_its_cpu_profile(
    profiles: dict[str, Path],
) -> None:
    cpu = summarize(decode_file(profiles["cpu"])).default
    burn = next(row for row in cpu.functions if row.function == "main.burnCPU")
    assert cpu.percent(burn.cum) > 50
    heap = summarize(decode_file(profiles["heap"])).default
    assert heap.sample_type.type == "inuse_space"
    assert heap.functions[0].function == "main.holdMemory"
    goroutines = summarize(decode_file(profiles["goroutine"])).default
    park = next(row for row in goroutines.functions if row.function == "main.parkGoroutine")
    assert park.cum >= 500


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_our_text_report_is_go_tool_pprofs_byte_for_byte(
    profiles: dict[str, Path], go_tool_pprof: Callable[..., str], name: str
) -> None:
    path = profiles[name]
    profile = decode_file(path)
    assert render_top(profile) == go_tool_pprof("-top", "-nodefraction=0", str(path))
    assert render_top(profile, top=10) == go_tool_pprof(
        "-top", "-nodefraction=0", "-nodecount=10", str(path)
    )
    first = profile.sample_types[0].type
    assert render_top(profile, sample_type=first) == go_tool_pprof(
        "-top", "-nodefraction=0", f"-sample_index={first}", str(path)
    )
