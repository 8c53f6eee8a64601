"""Failover time of active/standby: SIGKILL the leader, time the standby taking over.

Two operator processes (replica-a, replica-b) with the chart's lease timings (controller-runtime's
15 s lease, 10 s renew deadline, 2 s retry) share one Lease and one artifact directory. Each round
kills the leader with SIGKILL (it cannot release the Lease, as when its node dies), asks for a
capture at once (the session's capture-now annotation), and times from the kill:

- lease: the survivor holds the Lease (polled every 50 ms);
- ready: the survivor's /readyz answers 200 (the alert Service routes to it);
- first write: the survivor's first status write, the capture asked for, pending (or done)
  in status.

The killed replica is then started again (as a restarted container would be) and stands by, and
the next round kills the other one. A SIGKILLed holder's Lease is taken between lease - retry
and lease + 2 retries after the kill (13 to 19 s): its last renewal came up to one retry before
the kill, and the standby noticed it up to one retry later, then waits a whole lease.

    python bench/failover.py [--kills 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import control_plane, create_namespace, save, wait
from localcluster.controlplane import ControlPlane
from localcluster.leases import lease_holder
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    annotate_session,
    create_pod,
    create_session,
    get_session,
    session_body,
    wait_running,
)

NAMESPACE = "failover"
LEASE = "spikeprof-leader"
SESSION = "failover"
IDENTITIES = ("replica-a", "replica-b")
RETRY_SECONDS = 2.0  # SPIKEPROF_LEASE_RETRY_SECONDS's default


def _replica(plane: ControlPlane, workdir: Path, identity: str) -> OperatorProcess:
    operator = OperatorProcess(
        plane.kubeconfig, workdir / "artifacts", workdir / f"{identity}.log", [NAMESPACE]
    )
    operator.env.update(
        SPIKEPROF_IDENTITY=identity,
        SPIKEPROF_LEADER_ELECTION_LEASE=LEASE,
        SPIKEPROF_LEASE_NAMESPACE=NAMESPACE,
    )
    operator.start()
    return operator


def _written(api: Any, token: str) -> bool:
    """The capture asked for by `token` is in status: pending, or already done (a goroutine
    profile can start and end between two looks)."""
    status = get_session(api, NAMESPACE, SESSION).get("status") or {}
    pending = status.get("pendingCapture") or {}
    return token in (pending.get("token"), status.get("captureNowHandled"))


def _captured(api: Any, total: int) -> bool:
    status = get_session(api, NAMESPACE, SESSION).get("status") or {}
    return (status.get("captures") or {}).get("total", 0) >= total and not status.get(
        "pendingCapture"
    )


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "min": round(min(values), 2),
    }


def run(kills: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        with control_plane(workdir) as (plane, api):
            create_namespace(api, NAMESPACE)
            create_pod(api, NAMESPACE, "target", {"app": "target"})
            wait_running(api, NAMESPACE, "app=target", 1, wait)
            replicas = {"replica-a": _replica(plane, workdir, "replica-a")}
            wait(lambda: lease_holder(api, NAMESPACE, LEASE) == "replica-a", 60, "a leads")
            replicas["replica-b"] = _replica(plane, workdir, "replica-b")
            wait(lambda: replicas["replica-b"].readyz() == 503, 60, "b stands by")
            spec = {
                "selector": {"matchLabels": {"app": "target"}},
                "target": {"kind": "pprof", "port": 7777, "access": "direct"},
                "profiles": [{"type": "goroutine"}],
                "limits": {"cooldown": "0s"},
                "output": {"volume": {}},
            }
            create_session(api, NAMESPACE, session_body(SESSION, spec))
            wait(lambda: replicas["replica-a"].readyz() == 200, 60, "a serves the session")
            rounds: list[dict[str, float]] = []
            phases = random.Random(15)
            try:
                for number in range(kills):
                    # A crash falls at any point of the renewal cycle: a seeded offset of up to
                    # one retry period, after the standby's first tries (killing right after
                    # its start would always hit one phase of it).
                    time.sleep(2 * RETRY_SECONDS + phases.uniform(0, RETRY_SECONDS))
                    leader = lease_holder(api, NAMESPACE, LEASE)
                    assert leader in replicas, f"no leader before round {number}"
                    survivor = next(i for i in IDENTITIES if i != leader)
                    killed = time.monotonic()
                    replicas[leader].kill()
                    token = f"round-{number}"
                    annotate_session(api, NAMESPACE, SESSION, "spikeprof.io/capture-now", token)
                    wait(
                        lambda: lease_holder(api, NAMESPACE, LEASE) == survivor,  # noqa: B023
                        60,
                        "the survivor to take the Lease",
                    )
                    took_lease = time.monotonic() - killed
                    wait(lambda: replicas[survivor].readyz() == 200, 30, "ready")  # noqa: B023
                    ready = time.monotonic() - killed
                    wait(lambda: _written(api, token), 30, "first write")  # noqa: B023
                    first_write = time.monotonic() - killed
                    wait(lambda: _captured(api, number + 1), 60, "the capture")  # noqa: B023
                    rounds.append({"lease": took_lease, "ready": ready, "firstWrite": first_write})
                    print(
                        f"kill {number + 1}: {leader} -> {survivor}: Lease {took_lease:.1f} s, "
                        f"ready {ready:.1f} s, first status write {first_write:.1f} s"
                    )
                    replicas[leader].stop()
                    replicas[leader] = _replica(plane, workdir, leader)
                    restarted = replicas[leader]
                    wait(lambda: restarted.readyz() == 503, 60, "the restarted one stands by")  # noqa: B023
            except Exception:
                for identity, operator in replicas.items():
                    print(f"--- {identity}'s log, last lines:\n" + operator.log()[-3000:])
                raise
            finally:
                for operator in replicas.values():
                    operator.stop()
    return {
        "kills": kills,
        "settings": {"leaseSeconds": 15, "renewDeadlineSeconds": 10, "retrySeconds": 2},
        "expectedLeaseTakeoverSeconds": {"min": 13, "max": 19},
        "leaseTakenSeconds": _summary([r["lease"] for r in rounds]),
        "readySeconds": _summary([r["ready"] for r in rounds]),
        "firstStatusWriteSeconds": _summary([r["firstWrite"] for r in rounds]),
        "rounds": [{k: round(v, 2) for k, v in r.items()} for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    results = run(args.kills)
    path = save("failover", results)
    print(
        f"Lease taken p50 {results['leaseTakenSeconds']['p50']} s, "
        f"max {results['leaseTakenSeconds']['max']} s; first status write p50 "
        f"{results['firstStatusWriteSeconds']['p50']} s, "
        f"max {results['firstStatusWriteSeconds']['max']} s -> {path}"
    )


if __name__ == "__main__":
    main()
