"""The predictive memory rule: a least-squares trend over a window, fired before the limit."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.rules import (
    Firing,
    Observation,
    Resources,
    RuleEngine,
    Threshold,
    fit_trend,
    format_rate,
)
from spikeprof.core.spec import SpecError, parse_spec

MIB = 2**20
LIMITED = {"leaky": Resources(memory_limit=512 * MIB)}
PREDICT = Threshold(name="oom", metric="memory", predict_within=120, predict_window=60)


def run(rule: Threshold, series: list[tuple[float, float]], resources: Any = None) -> list[Firing]:
    engine = RuleEngine([rule])
    fired: list[Firing] = []
    for at, value in series:
        firings, problems = engine.observe(
            [Observation("leaky", "memory", value, at)], resources or LIMITED
        )
        assert problems == []
        fired += firings
    return fired


def climb(
    start_mib: float, mib_per_second: float, seconds: int, step: int = 5, calm: int = 60
) -> list[tuple[float, float]]:
    """`calm` seconds flat at start_mib (the rule's warm-up), then a steady climb from t=1000."""
    flat = [(1000.0 + t, start_mib * MIB) for t in range(-calm, 0, step)]
    rise = [
        (1000.0 + t, (start_mib + mib_per_second * t) * MIB) for t in range(0, seconds + 1, step)
    ]
    return flat + rise


def test_the_least_squares_line_reads_level_and_slope_at_the_newest_sample() -> None:
    trend = fit_trend([(0, 10), (1, 13), (2, 14), (3, 19)])
    assert trend is not None
    assert trend.slope == pytest.approx(2.8)
    assert trend.level == pytest.approx(18.2)  # the line at t=3, not the last sample
    assert trend.reaches(32.2) == pytest.approx(5.0)
    assert fit_trend([(5, 1), (5, 2)]) is None, "no spread in time, no line"


def test_a_leak_fires_when_its_trend_reaches_the_limit_within_the_horizon() -> None:
    # A minute calm at 100 MiB, then 3 MiB/s: 512 MiB at t≈137s; the rule looks 120s ahead.
    fired = run(PREDICT, climb(100, 3, 60))
    assert len(fired) == 1
    firing = fired[0]
    # At t=45 (235 MiB) the line through the last minute, flat start included, rises 2.5 MiB/s.
    assert firing.at == 1045.0
    assert firing.threshold == 512 * MIB
    assert firing.reason == "memory 235Mi rising 2.5Mi/s, limit 512Mi in ~1m56s"


def test_the_reason_reads_as_the_issue_describes_it() -> None:
    # A minute rising 3.1 MiB/s to 410 MiB: 512 MiB in about 33 s.
    series = [(1000.0 + t, (410 - 3.1 * (60 - t)) * MIB) for t in range(0, 61, 2)]
    [firing] = run(PREDICT, series)
    assert firing.at == 1060.0, "not before the pod was watched for a whole window"
    assert firing.reason == "memory 410Mi rising 3.1Mi/s, limit 512Mi in ~33s"


def test_a_slow_leak_that_misses_the_horizon_does_not_fire() -> None:
    # 0.5 MiB/s from 100 MiB: 512 MiB is 13 minutes away, far beyond 2m.
    assert run(PREDICT, climb(100, 0.5, 300)) == []


def test_fewer_samples_than_the_minimum_do_not_make_a_trend() -> None:
    short = Threshold(name="oom", metric="memory", predict_within=120, predict_window=1)
    steep = [(1000.0, 100 * MIB), (1000.5, 250 * MIB), (1001.0, 400 * MIB)]
    assert run(short, steep[:2]) == [], "two points: a line, not a trend"
    assert [f.at for f in run(short, steep)] == [1001.0]
    # Five samples asked for: a 10 s window sampled every 5 s never holds them, every 2 s does.
    five = Threshold(
        name="oom", metric="memory", predict_within=120, predict_window=10, min_samples=5
    )
    assert run(five, climb(300, 10, 20, step=5, calm=10)) == []
    assert len(run(five, climb(300, 10, 20, step=2, calm=10))) == 1


def test_a_process_starting_up_is_not_taken_for_a_leak() -> None:
    # A new pod climbs from 5 to 60 MiB in its first seconds, then holds: steep, but not a leak.
    start = [(1000.0 + t, min(5 + 11 * t, 60) * MIB) for t in range(0, 120)]
    assert run(PREDICT, start) == []


def test_a_flat_or_falling_series_never_fires_even_near_the_limit() -> None:
    assert run(PREDICT, [(1000.0 + t, 500 * MIB) for t in range(0, 60, 5)]) == []
    assert run(PREDICT, climb(500, -2, 60)) == []


def test_only_the_window_is_fitted_so_an_old_plateau_does_not_dilute_a_new_leak() -> None:
    flat = [(1000.0 + t, 100 * MIB) for t in range(0, 300, 5)]
    leak = [(1300.0 + t, (100 + 4 * t) * MIB) for t in range(0, 60, 5)]
    fired = run(PREDICT, flat + leak)
    assert len(fired) == 1
    wide = Threshold(name="oom", metric="memory", predict_within=120, predict_window=600)
    assert run(wide, flat + leak) == [], "fitted over 10 minutes, the leak is still a slope of ~0"


def test_the_rule_fires_once_per_rise_and_re_arms_when_the_trend_turns() -> None:
    rise = climb(100, 5, 40)
    restart = [(1045.0 + t, 20 * MIB) for t in range(0, 120, 5)]  # the OOM kill: back to 20 MiB
    again = [(1165.0 + t, (20 + 5 * t) * MIB) for t in range(0, 60, 5)]
    fired = run(PREDICT, rise + restart + again)
    assert len(fired) == 2
    assert fired[1].at > 1165.0


def test_a_sample_the_source_hands_again_counts_once() -> None:
    # metrics-server refreshes about every 15 s: the same timestamp comes back between.
    series = [(1000.0, 100 * MIB), (1000.0, 100 * MIB), (1000.0, 100 * MIB), (1015.0, 200 * MIB)]
    assert run(PREDICT, series) == [], "two distinct samples, under the minimum of three"


def test_a_pod_without_a_memory_limit_is_named_as_percentage_rules_name_it() -> None:
    engine = RuleEngine([PREDICT])
    firings, problems = engine.observe([Observation("bare", "memory", 100 * MIB, 1.0)], {})
    assert firings == []
    assert [p.message for p in problems] == [
        "pod bare has no memory limit on every container, so rule oom (predict: reaches limit) "
        "cannot apply to it"
    ]


def test_for_holds_a_prediction_before_it_fires() -> None:
    held = Threshold(name="oom", metric="memory", predict_within=120, sustain=10)
    [firing] = run(held, climb(100, 3, 60))
    assert firing.at == 1055.0  # predicted from t=45 on, as without for, held for 10s
    assert firing.reason.endswith("(for 10s)")


def session(threshold: dict[str, Any], source: str = "scrape") -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": [{"type": "heap"}],
        "output": {"volume": {}},
        "trigger": {"metricsSource": source, "thresholds": [threshold]},
    }


def test_predict_is_read_with_its_defaults() -> None:
    parsed = parse_spec(
        session({"metric": "memory", "predict": {"reaches": "limit", "within": "2m"}})
    )
    [rule] = parsed.trigger.thresholds
    assert (rule.predict_within, rule.predict_window, rule.min_samples) == (120.0, 60.0, 3)
    assert rule.name == "memory-0"
    parsed = parse_spec(
        session(
            {"metric": "memory", "predict": {"within": "30s", "window": "20s", "minSamples": 8}},
            source="metricsServer",
        )
    )
    [rule] = parsed.trigger.thresholds
    assert (rule.predict_within, rule.predict_window, rule.min_samples) == (30.0, 20.0, 8)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (
            {"metric": "cpu", "predict": {"within": "2m"}},
            "spec.trigger.thresholds[0].predict applies to metric memory only",
        ),
        (
            {"metric": "memory", "above": "90%", "of": "limit", "predict": {"within": "2m"}},
            "spec.trigger.thresholds[0] needs exactly one of above, spike or predict",
        ),
        (
            {"metric": "memory", "predict": {"window": "1m"}},
            "spec.trigger.thresholds[0].predict.within is required",
        ),
        (
            {"metric": "memory", "predict": {"within": "soon"}},
            "spec.trigger.thresholds[0].predict.within:",
        ),
        (
            {"metric": "memory", "predict": {"within": "2h"}},
            "spec.trigger.thresholds[0].predict.within must be between 1s and 1h",
        ),
        (
            {"metric": "memory", "predict": {"within": "2m", "reaches": "request"}},
            "spec.trigger.thresholds[0].predict.reaches 'request' is not limit",
        ),
        (
            {"metric": "memory", "predict": {"within": "2m", "minSamples": 2}},
            "spec.trigger.thresholds[0].predict.minSamples must be a whole number between 3",
        ),
        (
            {"metric": "memory", "predict": "soon"},
            "spec.trigger.thresholds[0].predict must be an object",
        ),
    ],
)
def test_a_bad_prediction_is_named_by_its_field(threshold: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(session(threshold))
    assert message in str(error.value)


def test_rates_read_with_two_digits_and_no_exponent() -> None:
    assert format_rate("memory", 3.1 * MIB) == "3.1Mi/s"
    assert format_rate("memory", 12.4 * MIB) == "12Mi/s"
    assert format_rate("memory", 940 * 1024) == "940Ki/s"
    assert format_rate("memory", 100) == "100B/s"
