"""The stand-in's containers end and restart as containerd and the kubelet report them."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.containers import (
    Container,
    CrashLoopBackOff,
    go_duration,
    memory_limit_bytes,
    termination_of,
)


@pytest.mark.parametrize(
    ("returncode", "oom_killed", "expected"),
    [
        (-9, True, (137, "OOMKilled")),
        (-9, False, (137, "Error")),  # a SIGKILL from anyone but the OOM killer
        (2, False, (2, "Error")),
        (0, False, (0, "Completed")),
        (-15, False, (143, "Error")),
    ],
)
def test_exit_codes_and_reasons_are_containerds(
    returncode: int, oom_killed: bool, expected: tuple[int, str]
) -> None:
    assert termination_of(returncode, oom_killed) == expected


def test_the_first_restart_is_immediate_and_later_ones_back_off_doubling_to_five_minutes() -> None:
    backoff = CrashLoopBackOff()
    assert backoff.remaining(finished=100.0, at=100.0) == 0.0
    backoff.next(finished=100.0, at=100.0)
    assert backoff.remaining(finished=101.0, at=101.0) == 10.0  # crashed again 1 s later
    backoff.next(finished=101.0, at=111.0)
    assert backoff.remaining(finished=112.0, at=113.0) == 19.0
    for _ in range(10):
        backoff.next(finished=112.0, at=112.0)
    assert backoff.backoff == 300.0


def test_a_container_that_ran_for_twice_the_maximum_starts_its_back_off_over() -> None:
    backoff = CrashLoopBackOff()
    backoff.next(finished=0.0, at=0.0)
    backoff.next(finished=5.0, at=10.0)
    assert backoff.backoff == 20.0
    assert backoff.remaining(finished=611.0, at=611.0) == 0.0
    backoff.next(finished=611.0, at=611.0)
    assert backoff.backoff == 10.0


@pytest.mark.parametrize(
    ("seconds", "printed"), [(10, "10s"), (20, "20s"), (80, "1m20s"), (300, "5m0s")]
)
def test_back_off_durations_print_as_go_prints_them(seconds: float, printed: str) -> None:
    assert go_duration(seconds) == printed


def test_the_memory_limit_is_read_from_the_container_limits() -> None:
    limited = client.V1Container(
        name="app", resources=client.V1ResourceRequirements(limits={"memory": "128Mi"})
    )
    assert memory_limit_bytes(limited) == 128 << 20
    assert memory_limit_bytes(client.V1Container(name="app")) is None


def test_a_restarted_container_reports_the_previous_one_as_its_last_state() -> None:
    container = Container("uid-1", "app", "pprof-target", None, [], Path("/dev/null"), None)
    container.start()
    first_id = container.container_id
    container.exited(-9, oom_killed=True)

    terminated = container.status()
    assert terminated["state"]["terminated"]["reason"] == "OOMKilled"
    assert (terminated["ready"], terminated["restartCount"], terminated["lastState"]) == (
        False,
        0,
        {},
    )

    container.start()
    running = container.status()
    assert running["restartCount"] == 1
    assert running["ready"] and "running" in running["state"]
    assert running["lastState"]["terminated"]["exitCode"] == 137
    assert running["lastState"]["terminated"]["containerID"] == first_id
    assert running["containerID"] != first_id
