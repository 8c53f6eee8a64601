"""Threshold, spike and trend rules, evaluated per pod on a stream of metric observations.

A rule fires when a pod's value stays over its threshold for `for` (sustained), or jumps by
`increasePercent` over the average of its recent window (spike, after a warm-up, as
mosn/holmes does), or when the least-squares trend of its memory over a recent window reaches
the pod's limit within a horizon (predict: before the OOM kill, not after it). Hysteresis: a
rule that fired re-arms only after the value falls back to or below the threshold (or the trend
turns away from the limit), so a pod that stays hot is captured once, not on every evaluation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from spikeprof.core.quantities import format_bytes, format_cores, format_duration

Metric = Literal["cpu", "memory", "goroutines", "heap"]
Basis = Literal["limit", "request"]


@dataclass(frozen=True)
class Threshold:
    name: str
    metric: Metric
    above: float | None = None  # absolute: cores, bytes or a count
    percent: float | None = None  # of the pod's limit or request
    of: Basis | None = None
    sustain: float = 0.0  # seconds the value must stay over ("for")
    spike_percent: float | None = None
    baseline_window: float = 300.0
    warmup: float = 300.0
    minimum: float = 0.0  # a spike counts only from this value up
    predict_within: float | None = None  # seconds: fire if the trend reaches the limit by then
    predict_window: float = 60.0  # seconds of samples the trend is fitted over
    min_samples: int = 3  # a trend from fewer samples is noise, not a trend

    @property
    def is_spike(self) -> bool:
        return self.spike_percent is not None

    @property
    def is_prediction(self) -> bool:
        return self.predict_within is not None

    @property
    def is_plain(self) -> bool:
        """Over a fixed line (absolute or percent): its state matters only while over."""
        return self.spike_percent is None and self.predict_within is None


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Resources:
    """A pod's summed container limits and requests; None where any container lacks one."""

    cpu_limit: float | None = None
    cpu_request: float | None = None
    memory_limit: float | None = None
    memory_request: float | None = None

    def basis(self, metric: Metric, of: Basis) -> float | None:
        if metric == "cpu":
            return self.cpu_limit if of == "limit" else self.cpu_request
        if metric == "memory":
            return self.memory_limit if of == "limit" else self.memory_request
        return None


class Observation(NamedTuple):
    """One value of one pod; a tuple, as sources make one per pod and metric every cycle."""

    pod: str
    metric: Metric
    value: float
    at: float  # seconds since the epoch


def new_observation(fields: tuple[str, Metric, float, float]) -> Observation:
    """Observation(pod, metric, value, at), built by tuple's own constructor: a NamedTuple's
    is a Python function, which took twice as long (~350 ns against ~170 here), and sources
    make one per pod and metric every evaluation."""
    return _make_tuple(Observation, fields)


_make_tuple = tuple.__new__


@dataclass(frozen=True)
class Firing:
    rule: str
    pod: str
    metric: Metric
    value: float
    threshold: float
    at: float
    reason: str  # e.g. "cpu 930m above 800m (80% of limit 1000m) for 30s"


@dataclass(frozen=True)
class RuleProblem:
    rule: str
    pod: str
    message: str


def format_value(metric: Metric, value: float) -> str:
    if metric == "cpu":
        return format_cores(value)
    if metric in ("memory", "heap"):
        return format_bytes(value)
    return f"{value:.0f}"


@dataclass(frozen=True)
class Trend:
    """A least-squares line through (time, value) samples: value = level + slope * (t - at)."""

    at: float  # the time of the newest sample, where level is read
    level: float
    slope: float  # units per second

    def reaches(self, target: float) -> float | None:
        """Seconds from `at` until the line reaches `target`; None if it never does."""
        if self.level >= target:
            return 0.0
        if self.slope <= 0:
            return None
        return (target - self.level) / self.slope


def fit_trend(samples: Iterable[tuple[float, float]]) -> Trend | None:
    """The least-squares line through the samples; None for fewer than two distinct times."""
    points = list(samples)
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    newest = max(t for t, _ in points)
    return Trend(at=newest, level=mean_v + slope * (newest - mean_t), slope=slope)


def format_rate(metric: Metric, per_second: float) -> str:
    if metric in ("memory", "heap"):
        for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
            if abs(per_second) >= size:
                scaled = per_second / size
                # Two significant digits, never an exponent: 3.1Mi/s, 12Mi/s, 940Ki/s.
                return f"{scaled:.2g}{unit}/s" if abs(scaled) < 10 else f"{scaled:.0f}{unit}/s"
        return f"{per_second:.0f}B/s"
    return f"{format_value(metric, per_second)}/s"


@dataclass(slots=True)
class _State:
    over_since: float | None = None
    armed: bool = True
    first_seen: float | None = None
    history: deque[tuple[float, float]] = field(default_factory=deque)
    seen: int = 0  # the evaluation that last saw the pod: older states are forgotten


_NO_RESOURCES = Resources()


class RuleEngine:
    """Per-pod state of every rule of one session; feed it each evaluation's observations.

    Cost per evaluation is one pass over the observations. A plain threshold keeps state only
    for the pods over its line (a pod under it is in the state a new pod starts in), so a quiet
    fleet of 10,000 pods holds no state and builds no text; a reason is written only on firing.
    """

    def __init__(self, thresholds: Iterable[Threshold]) -> None:
        self.thresholds = tuple(thresholds)
        self._state: dict[tuple[str, str], _State] = {}
        self._rules_by_metric: dict[str, tuple[Threshold, ...]] = {}
        for rule in self.thresholds:
            self._rules_by_metric[rule.metric] = (*self._rules_by_metric.get(rule.metric, ()), rule)
        # Metrics whose rules are all plain thresholds: a pod under every line with no state
        # is passed over without a call (the quiet fleet, almost every pod of every cycle).
        self._plain_only = frozenset(
            metric
            for metric, rules in self._rules_by_metric.items()
            if all(rule.is_plain for rule in rules)
        )
        self._evaluation = 0

    @property
    def metrics(self) -> frozenset[Metric]:
        return frozenset(t.metric for t in self.thresholds)

    def observe(
        self,
        observations: Iterable[Observation],
        resources: Mapping[str, Resources],
    ) -> tuple[list[Firing], list[RuleProblem]]:
        firings: list[Firing] = []
        problems: list[RuleProblem] = []
        self._evaluation += 1
        evaluation = self._evaluation
        states = self._state
        plain_only = self._plain_only
        # (metric, id of the pod's Resources) -> (that Resources, the lowest line of the
        # metric's plain rules, or None where a rule has no line for such a pod: a RuleProblem,
        # said every time). Pods of one workload share one Resources object (core.pods.Sharing),
        # so a fleet is a few entries; the object is held so that its id stays its own.
        lowest: dict[tuple[str, int], tuple[Resources, float | None]] = {}
        for obs in observations:
            if obs.metric in plain_only:
                pod_resources = resources.get(obs.pod, _NO_RESOURCES)
                line_key = (obs.metric, id(pod_resources))
                known = lowest.get(line_key)
                if known is None:
                    known = lowest[line_key] = (
                        pod_resources,
                        self._lowest_line(obs, pod_resources),
                    )
                line = known[1]
                # At or under every line, and no rule keeps a state for the pod: every rule's
                # _threshold would return None and change nothing, which is all skipping does.
                if line is not None and obs.value <= line and not (states and self._held_by(obs)):
                    continue
            for rule in self._rules_by_metric.get(obs.metric, ()):
                key = (rule.name, obs.pod)
                state = states.get(key)
                pod_resources = resources.get(obs.pod, _NO_RESOURCES)
                outcome: Firing | RuleProblem | None
                if rule.is_plain:
                    outcome = self._threshold(rule, key, state, obs, pod_resources, evaluation)
                else:
                    if state is None:
                        state = states[key] = _State()
                    state.seen = evaluation
                    outcome = self._step(rule, state, obs, pod_resources)
                if outcome is None:
                    continue
                if isinstance(outcome, RuleProblem):
                    problems.append(outcome)
                else:
                    firings.append(outcome)
        # The pod is gone or went unreported: its history goes with it.
        for key in [key for key, state in states.items() if state.seen != evaluation]:
            del states[key]
        return firings, problems

    def _lowest_line(self, obs: Observation, resources: Resources) -> float | None:
        """The lowest line of the plain rules on the observation's metric for a pod with these
        resources (a value at or below it is under every rule), or None if a rule has none."""
        lines = []
        for rule in self._rules_by_metric[obs.metric]:
            absolute = self._absolute_limit(rule, obs, resources)
            if isinstance(absolute, RuleProblem):
                return None
            # At or below the line is never over (a rule's minimum only narrows what is over).
            lines.append(absolute[0])
        return min(lines)

    def _held_by(self, obs: Observation) -> bool:
        """Whether any rule on the observation's metric keeps a state for its pod."""
        states = self._state
        return any((rule.name, obs.pod) in states for rule in self._rules_by_metric[obs.metric])

    def _threshold(
        self,
        rule: Threshold,
        key: tuple[str, str],
        state: _State | None,
        obs: Observation,
        resources: Resources,
        evaluation: int,
    ) -> Firing | RuleProblem | None:
        """A plain threshold: state is made when the pod goes over, dropped when it is back
        under (where a fresh state would be: not over, armed)."""
        absolute = self._absolute_limit(rule, obs, resources)
        if isinstance(absolute, RuleProblem):
            if state is not None:
                state.seen = evaluation
            return absolute
        limit, basis = absolute
        if not (obs.value > limit and obs.value >= rule.minimum):
            if state is not None:
                del self._state[key]
            return None
        if state is None:
            state = self._state[key] = _State()
        state.seen = evaluation
        if not self._held(rule, state, obs, True):
            return None
        if basis is None:
            describe = f"above {format_value(rule.metric, limit)}"
        else:
            describe = (
                f"above {format_value(rule.metric, limit)} ({rule.percent:g}% of {rule.of} "
                f"{format_value(rule.metric, basis)})"
            )
        return self._firing(rule, state, obs, limit, describe)

    def _step(
        self, rule: Threshold, state: _State, obs: Observation, resources: Resources
    ) -> Firing | RuleProblem | None:
        """A spike or predict rule, whose state (history) is kept for every pod."""
        if rule.is_prediction:
            return self._predict(rule, state, obs, resources)
        limit, baseline = self._spike_limit(rule, state, obs)
        over = limit is not None and obs.value > limit and obs.value >= rule.minimum
        if not self._held(rule, state, obs, over):
            return None
        assert limit is not None
        assert rule.spike_percent is not None
        describe = (
            f"jumped over {format_value(rule.metric, limit)}, {rule.spike_percent:g}% above its "
            f"{format_duration(round(rule.baseline_window))} average of "
            f"{format_value(rule.metric, baseline)}"
        )
        return self._firing(rule, state, obs, limit, describe)

    @staticmethod
    def _firing(
        rule: Threshold, state: _State, obs: Observation, limit: float, describe: str
    ) -> Firing:
        reason = f"{rule.metric} {format_value(rule.metric, obs.value)} {describe}"
        if rule.sustain:
            reason += f" for {format_duration(round(obs.at - (state.over_since or obs.at)))}"
        return Firing(rule.name, obs.pod, rule.metric, obs.value, limit, obs.at, reason)

    @staticmethod
    def _held(rule: Threshold, state: _State, obs: Observation, over: bool) -> bool:
        """Whether the rule fires now: over for `for`, and armed (hysteresis)."""
        if not over:
            state.over_since = None
            state.armed = True  # back under the line: the next crossing counts again
            return False
        if state.over_since is None:
            state.over_since = obs.at
        if not state.armed or obs.at - state.over_since < rule.sustain:
            return False
        state.armed = False
        return True

    def _predict(
        self, rule: Threshold, state: _State, obs: Observation, resources: Resources
    ) -> Firing | RuleProblem | None:
        limit = resources.basis(rule.metric, "limit")
        if limit is None or limit <= 0:
            return RuleProblem(
                rule.name,
                obs.pod,
                f"pod {obs.pod} has no {rule.metric} limit on every container, so rule "
                f"{rule.name} (predict: reaches limit) cannot apply to it",
            )
        history = state.history
        if history and history[-1][0] >= obs.at:
            # The source handed the same sample again (metrics-server refreshes every ~15s):
            # counting it twice would flatten the trend.
            return None
        history.append((obs.at, obs.value))
        while history and history[0][0] < obs.at - rule.predict_window:
            history.popleft()
        if state.first_seen is None:
            state.first_seen = obs.at
        # Warm-up: a pod is watched for a whole window before its trend counts, so that the
        # climb of a process starting up (a few MiB in a second) is not taken for a leak.
        warm = obs.at - state.first_seen >= rule.predict_window
        enough = warm and len(history) >= rule.min_samples
        trend = fit_trend(history) if enough else None
        eta = trend.reaches(limit) if trend is not None and trend.slope > 0 else None
        assert rule.predict_within is not None
        over = eta is not None and eta <= rule.predict_within
        if not self._held(rule, state, obs, over):
            return None
        assert trend is not None
        assert eta is not None
        reason = (
            f"{rule.metric} {format_value(rule.metric, obs.value)} rising "
            f"{format_rate(rule.metric, trend.slope)}, limit {format_value(rule.metric, limit)} "
            f"in ~{format_duration(round(eta))}"
        )
        if rule.sustain:
            reason += f" (for {format_duration(round(obs.at - (state.over_since or obs.at)))})"
        return Firing(rule.name, obs.pod, rule.metric, obs.value, limit, obs.at, reason)

    def _absolute_limit(
        self, rule: Threshold, obs: Observation, resources: Resources
    ) -> tuple[float, float | None] | RuleProblem:
        """(the line, the limit or request it is a percent of, None for an absolute line)."""
        if rule.percent is None:
            assert rule.above is not None
            return rule.above, None
        assert rule.of is not None
        basis = resources.basis(rule.metric, rule.of)
        if basis is None or basis <= 0:
            return RuleProblem(
                rule.name,
                obs.pod,
                f"pod {obs.pod} has no {rule.metric} {rule.of} on every container, so rule "
                f"{rule.name} ({rule.percent:g}% of {rule.of}) cannot apply to it",
            )
        return basis * rule.percent / 100, basis

    def _spike_limit(
        self, rule: Threshold, state: _State, obs: Observation
    ) -> tuple[float | None, float]:
        """(the line, None while warming up; the baseline it is computed from)."""
        history = state.history
        while history and history[0][0] < obs.at - rule.baseline_window:
            history.popleft()
        if state.first_seen is None:
            state.first_seen = obs.at
        warm = bool(history) and obs.at - state.first_seen >= rule.warmup
        baseline = sum(v for _, v in history) / len(history) if history else 0.0
        history.append((obs.at, obs.value))
        if not warm:
            return None, baseline
        assert rule.spike_percent is not None
        return baseline * (1 + rule.spike_percent / 100), baseline
