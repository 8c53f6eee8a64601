"""Pods under every plain line are passed over without evaluating each rule: the outcome must be
exactly what evaluating every rule on every pod gives, evaluation after evaluation."""

from __future__ import annotations

import random

from spikeprof.core.rules import (
    Firing,
    Observation,
    Resources,
    RuleEngine,
    RuleProblem,
    Threshold,
    new_observation,
)

PLAIN_RULES = [
    Threshold(name="cpu-hot", metric="cpu", percent=80, of="limit", sustain=10),
    Threshold(name="cpu-over-request", metric="cpu", percent=150, of="request"),
    Threshold(name="cpu-absolute", metric="cpu", above=0.9, minimum=0.95),
    Threshold(name="memory-big", metric="memory", above=2**30),
]

WORKLOADS = [
    Resources(cpu_limit=1.0, cpu_request=0.5, memory_limit=2**31),
    Resources(cpu_limit=0.5, cpu_request=None),  # no request: a problem for one rule
    Resources(),  # nothing set: problems for the percent rules
]


class EveryRuleEngine(RuleEngine):
    """The engine as it was: every rule evaluated for every observation."""

    def __init__(self, thresholds: list[Threshold]) -> None:
        super().__init__(thresholds)
        self._plain_only = frozenset()


def outcome(
    firings: list[Firing], problems: list[RuleProblem]
) -> tuple[list[Firing], list[RuleProblem]]:
    return sorted(firings, key=repr), sorted(problems, key=repr)


def test_a_fleet_of_quiet_hot_and_limitless_pods_fires_as_if_every_rule_ran() -> None:
    chance = random.Random(16)
    pods = [f"pod-{i:03d}" for i in range(60)]
    resources = {pod: WORKLOADS[i % len(WORKLOADS)] for i, pod in enumerate(pods)}
    fast, reference = RuleEngine(PLAIN_RULES), EveryRuleEngine(PLAIN_RULES)
    fired = 0
    for step in range(40):
        at = 1000.0 + 5 * step
        observations = []
        for pod in pods:
            if chance.random() < 0.1:
                continue  # unreported this time: its state is forgotten
            hot = chance.random() < 0.2
            cpu = chance.choice([0.0, 0.3, 0.4, 0.8, 0.9, 0.95, 1.2]) if hot else 0.05
            observations.append(Observation(pod, "cpu", cpu, at))
            observations.append(Observation(pod, "memory", chance.choice([2**20, 2**31]), at))
        got = outcome(*fast.observe(observations, resources))
        want = outcome(*reference.observe(observations, resources))
        assert got == want
        fired += len(got[0])
    assert fired > 0  # the series does cross the lines, or this test proves nothing


def test_a_pod_back_under_the_line_rearms_as_before() -> None:
    rule = Threshold(name="cpu-hot", metric="cpu", percent=80, of="limit")
    limits = {"web-1": Resources(cpu_limit=1.0)}
    engine = RuleEngine([rule])
    series = [0.1, 0.9, 0.95, 0.5, 0.9]
    fired = [
        len(engine.observe([Observation("web-1", "cpu", value, 1000.0 + i)], limits)[0])
        for i, value in enumerate(series)
    ]
    assert fired == [0, 1, 0, 0, 1]


def test_a_pod_without_the_limit_a_rule_needs_is_a_problem_at_every_evaluation() -> None:
    rule = Threshold(name="cpu-hot", metric="cpu", percent=80, of="limit")
    engine = RuleEngine([rule])
    for at in (1000.0, 1005.0):
        firings, problems = engine.observe([Observation("bare", "cpu", 0.0, at)], {})
        assert firings == []
        assert [p.pod for p in problems] == ["bare"]


def test_an_observation_built_in_c_is_the_named_tuple() -> None:
    built = new_observation(("web-1", "cpu", 0.5, 1000.0))
    assert built == Observation("web-1", "cpu", 0.5, 1000.0)
    assert type(built) is Observation
    assert built.value == 0.5


def test_a_pod_seen_over_then_under_in_one_evaluation_rearms_as_before() -> None:
    """A source may report a pod twice (two series of one pod in a Prometheus answer): the
    second value, under the line, must still drop the state the first one made."""
    rule = Threshold(name="cpu-hot", metric="cpu", above=0.5)
    fast, reference = RuleEngine([rule]), EveryRuleEngine([rule])
    evaluations = [[0.9, 0.1], [0.9], [0.9, 0.1], [0.1], [0.9]]
    for step, values in enumerate(evaluations):
        observations = [Observation("web-1", "cpu", value, 1000.0 + step) for value in values]
        assert outcome(*fast.observe(observations, {})) == outcome(
            *reference.observe(observations, {})
        )
