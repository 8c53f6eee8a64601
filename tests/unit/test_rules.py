"""Rules on recorded series: sustained thresholds, spikes over a moving average, hysteresis."""

from __future__ import annotations

from collections.abc import Iterable

from spikeprof.core.rules import Firing, Observation, Resources, RuleEngine, Threshold

LIMITS = {"web-1": Resources(cpu_limit=1.0, cpu_request=0.5, memory_limit=2**30)}


def run(rule: Threshold, series: Iterable[tuple[float, float]], pod: str = "web-1") -> list[Firing]:
    """Feed (time, value) samples one evaluation at a time; collect what fired."""
    engine = RuleEngine([rule])
    fired: list[Firing] = []
    for at, value in series:
        firings, problems = engine.observe([Observation(pod, rule.metric, value, at)], LIMITS)
        assert problems == []
        fired += firings
    return fired


def every(seconds: float, values: list[float], start: float = 1000.0) -> list[tuple[float, float]]:
    return [(start + i * seconds, v) for i, v in enumerate(values)]


HOT = Threshold(name="cpu-hot", metric="cpu", percent=80, of="limit", sustain=30)


def test_a_short_blip_does_not_fire_a_sustained_rule() -> None:
    # 15 s over 80% of the limit, then back down: under the 30 s the rule asks for.
    series = every(5, [0.2, 0.95, 0.95, 0.95, 0.3, 0.95, 0.2])
    assert run(HOT, series) == []


def test_a_sustained_rise_fires_once_with_the_values_that_made_it_fire() -> None:
    series = every(5, [0.2] + [0.95] * 12)
    fired = run(HOT, series)
    assert len(fired) == 1
    firing = fired[0]
    assert firing.at == 1000 + 7 * 5  # over since t=1005, 30 s later
    assert firing.threshold == 0.8
    assert firing.reason == "cpu 950m above 800m (80% of limit 1000m) for 30s"


def test_hysteresis_re_arms_only_after_the_value_falls_back() -> None:
    rule = Threshold(name="mem", metric="memory", above=512 * 2**20)
    mib = 2**20
    series = every(1, [100 * mib, 600 * mib, 700 * mib, 600 * mib, 400 * mib, 650 * mib])
    fired = run(rule, series)
    assert [f.at for f in fired] == [1001, 1005]
    assert fired[0].reason == "memory 600Mi above 512Mi"


def test_a_jump_over_the_moving_average_fires_a_spike_rule_after_warm_up() -> None:
    rule = Threshold(
        name="jump", metric="cpu", spike_percent=100, baseline_window=60, warmup=60, minimum=0.1
    )
    calm = [0.20, 0.22, 0.18, 0.21, 0.19, 0.20, 0.21]  # one minute at ~0.2 cores
    fired = run(rule, every(10, [*calm, 0.9, 0.95]))
    assert len(fired) == 1
    assert fired[0].at == 1070
    # The window at t=1070 holds the six samples since t=1010, averaging 202m.
    assert fired[0].reason == "cpu 900m jumped over 403m, 100% above its 1m average of 202m"


def test_no_spike_fires_while_warming_up_or_below_the_minimum() -> None:
    rule = Threshold(
        name="jump", metric="cpu", spike_percent=50, baseline_window=60, warmup=60, minimum=0.5
    )
    assert run(rule, every(10, [0.1, 0.9])) == []  # no baseline yet
    assert run(rule, every(10, [0.01] * 7 + [0.04])) == []  # quadrupled, but under 500m


def test_a_steady_climb_moves_the_baseline_instead_of_firing() -> None:
    rule = Threshold(name="jump", metric="heap", spike_percent=50, baseline_window=30, warmup=30)
    climb = [100.0 * 1.05**i for i in range(30)]
    assert run(rule, every(5, climb)) == []


def test_a_percentage_rule_explains_why_it_cannot_apply_to_a_pod_without_limits() -> None:
    engine = RuleEngine([HOT])
    firings, problems = engine.observe([Observation("bare", "cpu", 3.0, 1.0)], {})
    assert firings == []
    assert [p.message for p in problems] == [
        "pod bare has no cpu limit on every container, so rule cpu-hot (80% of limit) "
        "cannot apply to it"
    ]


def test_pods_are_judged_apart_and_forgotten_when_they_go() -> None:
    rule = Threshold(name="g", metric="goroutines", above=1000)
    engine = RuleEngine([rule])
    first, _ = engine.observe(
        [Observation("a", "goroutines", 5000, 1), Observation("b", "goroutines", 10, 1)], {}
    )
    assert [f.pod for f in first] == ["a"]
    engine.observe([Observation("b", "goroutines", 10, 2)], {})  # a is gone
    again, _ = engine.observe([Observation("a", "goroutines", 5000, 3)], {})
    assert [f.pod for f in again] == ["a"], "a new pod of the same name starts armed"
