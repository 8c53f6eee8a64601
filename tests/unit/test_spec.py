"""Parsing the spec: defaults filled in, and every problem named by its field."""

from __future__ import annotations

from typing import Any

import pytest

from spikeprof.core.spec import SpecError, parse_spec


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "profiles": [{"type": "cpu"}, {"type": "heap", "gc": True}, {"type": "trace"}],
        "output": {"volume": {}},
    }
    base.update(changes)
    return base


def test_defaults_fill_what_the_spec_leaves_out() -> None:
    parsed = parse_spec(spec())
    cpu, heap, trace = parsed.profiles
    assert (cpu.type, cpu.seconds, cpu.query) == ("cpu", 30.0, {"seconds": "30"})
    assert (heap.query, heap.file_name) == ({"gc": "1"}, "heap.pb.gz")
    assert (trace.seconds, trace.file_name) == (5.0, "trace.out")
    assert cpu.endpoint == "profile" and heap.endpoint == "heap"
    assert parsed.target.kind == "pprof" and parsed.target.path_prefix == "/debug/pprof"
    assert parsed.limits.max_profile_bytes == 64 * 2**20
    assert parsed.limits.fetch_timeout == 30.0
    assert parsed.immediate is False
    assert parsed.longest_sampling == 30.0


def test_durations_and_quantities_are_read_as_written() -> None:
    parsed = parse_spec(
        spec(
            profiles=[{"type": "cpu", "duration": "1m30s"}],
            limits={"maxProfileBytes": "1Mi", "fetchTimeout": "2m", "maxConcurrent": 2},
        )
    )
    assert parsed.profiles[0].seconds == 90.0
    assert parsed.limits.max_profile_bytes == 2**20
    assert parsed.limits.fetch_timeout == 120.0
    assert parsed.limits.max_concurrent == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"selector": {}}, "spec.selector is empty"),
        ({"profiles": []}, "spec.profiles must list at least one profile"),
        ({"profiles": [{"type": "memory"}]}, "spec.profiles[0].type 'memory' is not one of"),
        ({"profiles": [{"type": "cpu", "duration": "10m"}]}, "between 1s and 5m"),
        ({"profiles": [{"type": "cpu", "duration": "soon"}]}, "'soon' is not a duration"),
        ({"profiles": [{"type": "heap", "duration": "5s"}]}, "applies only to cpu and trace"),
        ({"profiles": [{"type": "cpu", "gc": True}]}, "gc applies only to heap"),
        ({"profiles": [{"type": "cpu"}, {"type": "cpu"}]}, "more than once"),
        ({"target": {"kind": "java"}}, "spec.target.kind 'java'"),
        ({"target": {"port": 0}}, "spec.target.port must be a TCP port"),
        ({"target": {"access": "ssh"}}, "spec.target.access 'ssh' is not one of direct, "),
        (
            {"limits": {"maxProfileBytes": "lots"}},
            "spec.limits.maxProfileBytes: 'lots' is not a byte quantity",
        ),
        ({"output": {}}, "spec.output must say where artifacts go"),
    ],
)
def test_problems_are_named_by_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec(**changes))
    assert message in str(error.value)


def test_threshold_rules_are_read_in_their_units() -> None:
    parsed = parse_spec(
        spec(
            trigger={
                "metricsSource": "scrape",
                "thresholds": [
                    {"name": "hot", "metric": "cpu", "above": "80%", "of": "limit", "for": "30s"},
                    {"metric": "memory", "above": "1Gi"},
                    {
                        "metric": "cpu",
                        "spike": {"increasePercent": 50, "baselineWindow": "2m", "minimum": "100m"},
                    },
                    {"metric": "goroutines", "above": "5000"},
                ],
                "alerts": {"matchLabels": {"alertname": "HighCPU"}},
            },
            limits={"cooldown": "5m", "maxCaptures": 3, "expiresAfter": "24h"},
        )
    )
    hot, memory, jump, goroutines = parsed.trigger.thresholds
    assert (hot.percent, hot.of, hot.sustain) == (80.0, "limit", 30.0)
    assert (memory.name, memory.above) == ("memory-1", 2**30)
    assert (jump.spike_percent, jump.baseline_window, jump.warmup, jump.minimum) == (
        50.0,
        120.0,
        120.0,
        0.1,
    )
    assert goroutines.above == 5000
    assert parsed.trigger.interval == 5.0  # scrape's default
    assert parsed.trigger.alerts is not None
    assert (parsed.limits.cooldown, parsed.limits.max_captures, parsed.limits.expires_after) == (
        300.0,
        3,
        86400.0,
    )


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"thresholds": [{"metric": "cpu"}]}, "needs exactly one of above, spike or predict"),
        ({"thresholds": [{"metric": "cpu", "above": "80%"}]}, "needs of: limit or of: request"),
        (
            {
                "thresholds": [{"metric": "goroutines", "above": "50%", "of": "limit"}],
                "metricsSource": "scrape",
            },
            "a percentage applies to cpu and memory only",
        ),
        (
            {"thresholds": [{"metric": "heap", "above": "1Gi"}]},
            "metricsServer reports cpu and memory only",
        ),
        (
            {
                "thresholds": [
                    {"name": "a", "metric": "cpu", "above": "1"},
                    {"name": "a", "metric": "cpu", "above": "2"},
                ]
            },
            "rule names must be unique",
        ),
        ({"alerts": {}}, "needs at least one matchLabels or matchRegex entry"),
        ({"alerts": {"matchRegex": {"severity": "(crit"}}}, "matchRegex.severity"),
        (
            {"thresholds": [{"metric": "cpu", "above": "-5"}]},
            "spec.trigger.thresholds[0].above '-5' is negative",
        ),
        # Valid RE2 (the API server's check) that Python's re cannot compile.
        (
            {"alerts": {"matchRegex": {"severity": r"\p{Lu}+"}}},
            "spec.trigger.alerts.matchRegex.severity: '\\\\p{Lu}+' is not a regex: bad escape \\p",
        ),
    ],
)
def test_bad_triggers_are_named_by_field(trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec(trigger=trigger))
    assert message in str(error.value)


@pytest.mark.parametrize("access", ["direct", "portForward", "auto"])
def test_every_access_mode_is_read(access: str) -> None:
    assert parse_spec(spec(target={"access": access})).target.access == access


@pytest.mark.parametrize(("kind", "access"), [("pprof", "direct"), ("dapr", "auto")])
def test_access_left_out_is_auto_for_dapr_whose_sidecar_listens_on_loopback(
    kind: str, access: str
) -> None:
    assert parse_spec(spec(target={"kind": kind})).target.access == access
