"""The chart's high availability (issue #15), rendered with `helm template`: one replica holding
the leader's Lease by default, active/standby with `replicas: 2`, shards as a StatefulSet with
`sharding.shards: 3`, a paused operator with `replicas: 0`; the Lease rights stay in the release
namespace; a PodDisruptionBudget and anti-affinity only where more than one pod runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import test_chart_files as chart

SELECTOR = {
    "app.kubernetes.io/name": "spikeprof",
    "app.kubernetes.io/instance": "spikeprof",
    "app.kubernetes.io/component": "controller",
}
# The downward API: every mode names the replica after its pod, and keeps Leases beside it.
DOWNWARD = {
    "SPIKEPROF_IDENTITY": {"fieldRef": {"fieldPath": "metadata.name"}},
    "SPIKEPROF_LEASE_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
}
# controller-runtime's timings, the chart's defaults.
TIMINGS = {
    "SPIKEPROF_LEASE_SECONDS": "15",
    "SPIKEPROF_RENEW_DEADLINE_SECONDS": "10",
    "SPIKEPROF_LEASE_RETRY_SECONDS": "2",
}
LEASE_RULE = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}
ANTI_AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": SELECTOR},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
}


@pytest.fixture(scope="module")
def helm() -> Path:
    from localcluster.controlplane import build_binaries

    return build_binaries("helm") / "helm"


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(obj["kind"] for obj in objects)


def lease_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The Role for Leases; it must be the only rule on coordination.k8s.io anywhere."""
    lease_rules = [
        (obj["kind"], obj["metadata"].get("namespace"), rule)
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
        for rule in obj["rules"]
        if "coordination.k8s.io" in rule["apiGroups"]
    ]
    assert [(kind, namespace) for kind, namespace, _ in lease_rules] == [
        ("Role", "spikeprof-system")
    ], "Lease rights belong in the release namespace only"
    role = chart.only(
        [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "spikeprof-leases"],
        "Role",
    )
    binding = chart.only(
        [o for o in objects if o["metadata"]["name"] == "spikeprof-leases"], "RoleBinding"
    )
    assert binding["metadata"]["namespace"] == "spikeprof-system"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "spikeprof-leases",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spikeprof", "namespace": "spikeprof-system"}
    ]
    return role


def pod_spec(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = chart.only(objects, kind)["spec"]["template"]["spec"]
    return spec


def test_defaults_run_one_replica_that_holds_the_leaders_lease(helm: Path) -> None:
    objects = chart.render(helm)
    assert "StatefulSet" not in kinds(objects)
    assert chart.only(objects, "Deployment")["spec"]["replicas"] == 1
    env = chart.env_of(chart.controller(objects))
    assert {name: env[name] for name in [*DOWNWARD, *TIMINGS]} == {**DOWNWARD, **TIMINGS}
    assert env["SPIKEPROF_LEADER_ELECTION_LEASE"] == "spikeprof-leader"
    assert "SPIKEPROF_SHARD_LEASE_PREFIX" not in env
    assert lease_role(objects)["rules"] == [{**LEASE_RULE, "verbs": ["get", "create", "update"]}]
    # One pod: nothing to spread, and a budget would only block drains.
    assert "PodDisruptionBudget" not in kinds(objects)
    assert "affinity" not in pod_spec(objects)
    probes = chart.controller(objects)
    assert probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "alerts"}
    assert probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_two_replicas_run_active_standby_spread_over_nodes(helm: Path) -> None:
    objects = chart.render(helm, "--set=replicas=2")
    deployment = chart.only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    env = chart.env_of(chart.controller(objects))
    assert env["SPIKEPROF_LEADER_ELECTION_LEASE"] == "spikeprof-leader"
    assert {name: env[name] for name in [*DOWNWARD, *TIMINGS]} == {**DOWNWARD, **TIMINGS}
    assert pod_spec(objects)["affinity"] == ANTI_AFFINITY
    # A standby is never Ready, so a rollout must not wait for new pods to be Ready before it
    # stops the leader (it would wait forever).
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "100%"},
    }
    # Readiness is leadership: the alert Service routes to the leader alone.
    assert chart.controller(objects)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert lease_role(objects)["rules"] == [{**LEASE_RULE, "verbs": ["get", "create", "update"]}]


def test_active_standby_gets_no_budget_while_standbys_are_not_ready(helm: Path) -> None:
    # The budget counts Ready pods. With only the leader Ready, maxUnavailable 1 of 2 leaves
    # 0 disruptions allowed: the leader could never be evicted, and its node never drained.
    assert "PodDisruptionBudget" not in kinds(chart.render(helm, "--set=replicas=2"))
    # Without the alert receiver there is no /readyz, every replica is Ready, and a budget works.
    objects = chart.render(helm, "--set=replicas=2", "--set=alerts.enabled=false")
    budget = chart.only(objects, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert chart.controller(objects)["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_three_shards_run_as_a_statefulset_that_lists_its_shard_group(helm: Path) -> None:
    objects = chart.render(helm, "--set=sharding.shards=3", "--set=replicas=5")
    assert "Deployment" not in kinds(objects)
    shards = chart.only(objects, "StatefulSet")
    assert shards["spec"]["replicas"] == 3  # replicas is ignored
    assert shards["spec"]["podManagementPolicy"] == "Parallel"
    assert shards["spec"]["selector"]["matchLabels"] == SELECTOR
    env = chart.env_of(chart.controller(objects, "StatefulSet"))
    assert env["SPIKEPROF_SHARD_LEASE_PREFIX"] == "spikeprof-shard"
    assert "SPIKEPROF_LEADER_ELECTION_LEASE" not in env  # no leader among shards
    assert {name: env[name] for name in [*DOWNWARD, *TIMINGS]} == {**DOWNWARD, **TIMINGS}
    # A shard lists the Leases of its group to see the live shards; still no watch.
    assert lease_role(objects)["rules"] == [
        {**LEASE_RULE, "verbs": ["get", "create", "update", "list"]}
    ]
    # Every live shard is Ready, so the budget means what it says.
    budget = chart.only(objects, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert pod_spec(objects, "StatefulSet")["affinity"] == ANTI_AFFINITY
    probe = chart.controller(objects, "StatefulSet")["readinessProbe"]["httpGet"]
    assert probe == {"path": "/readyz", "port": "alerts"}
    # The governing Service is headless and names every shard.
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    governing = services[shards["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["selector"] == SELECTOR
    assert services["spikeprof"]["spec"]["selector"] == SELECTOR  # alerts reach every shard


def test_replicas_zero_pauses_the_operator_and_keeps_its_lease_rights(helm: Path) -> None:
    objects = chart.render(helm, "--set=replicas=0")
    assert chart.only(objects, "Deployment")["spec"]["replicas"] == 0
    assert "PodDisruptionBudget" not in kinds(objects)
    assert "affinity" not in pod_spec(objects)
    assert lease_role(objects)["rules"] == [{**LEASE_RULE, "verbs": ["get", "create", "update"]}]


def test_leader_election_off_runs_one_replica_without_leases(helm: Path) -> None:
    objects = chart.render(helm, "--set=leaderElection.enabled=false")
    deployment = chart.only(objects, "Deployment")
    # Two operators without a Lease must never overlap: the old pod stops first.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = chart.env_of(chart.controller(objects))
    assert {name: env[name] for name in DOWNWARD} == DOWNWARD
    assert not {"SPIKEPROF_LEADER_ELECTION_LEASE", "SPIKEPROF_SHARD_LEASE_PREFIX", *TIMINGS} & set(
        env
    )
    assert not [o for o in objects if o["metadata"]["name"] == "spikeprof-leases"]


def test_a_shared_claim_that_every_replica_can_mount_rolls_them_all_at_once(helm: Path) -> None:
    objects = chart.render(
        helm,
        "--set=replicas=2",
        "--set=artifacts.persistence.enabled=true",
        "--set=artifacts.persistence.accessModes={ReadWriteMany}",
    )
    assert chart.only(objects, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert chart.only(objects, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_affinity_values_and_the_topology_key_override_the_spread(helm: Path) -> None:
    zone = chart.render(
        helm, "--set=replicas=2", "--set=podAntiAffinity.topologyKey=topology.kubernetes.io/zone"
    )
    [term] = pod_spec(zone)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "affinity" not in pod_spec(
        chart.render(helm, "--set=replicas=2", "--set=podAntiAffinity.topologyKey=")
    )
    mine = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}
    node = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    given = chart.render(
        helm,
        "--set=sharding.shards=2",
        '--set-json=affinity={"podAntiAffinity":'
        '{"requiredDuringSchedulingIgnoredDuringExecution":[]},'
        '"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}',
    )
    assert pod_spec(given, "StatefulSet")["affinity"] == {**mine, **node}
    added = chart.render(
        helm,
        "--set=replicas=2",
        '--set-json=affinity={"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}',
    )
    assert pod_spec(added)["affinity"] == {**node, **ANTI_AFFINITY}


def test_lease_timings_reach_the_operator(helm: Path) -> None:
    objects = chart.render(
        helm,
        "--set=sharding.shards=2",
        "--set=leaderElection.leaseSeconds=30",
        "--set-json=leaderElection.renewDeadlineSeconds=20",
        "--set-json=leaderElection.retrySeconds=2.5",
    )
    env = chart.env_of(chart.controller(objects, "StatefulSet"))
    assert {name: env[name] for name in TIMINGS} == {
        "SPIKEPROF_LEASE_SECONDS": "30",
        "SPIKEPROF_RENEW_DEADLINE_SECONDS": "20",
        "SPIKEPROF_LEASE_RETRY_SECONDS": "2.5",
    }


def test_a_long_release_name_still_gives_a_shard_group_that_fits_a_label(helm: Path) -> None:
    full = "a-full-name-that-is-long-enough-to-fill-a-whole-label-by-itself"  # 63 characters
    objects = chart.render(helm, "--set=sharding.shards=2", f"--set=fullnameOverride={full}")
    env = chart.env_of(chart.controller(objects, "StatefulSet"))
    assert len(env["SPIKEPROF_SHARD_LEASE_PREFIX"]) <= 63
    assert env["SPIKEPROF_SHARD_LEASE_PREFIX"].endswith("-shard")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set=replicas=2", "--set=leaderElection.enabled=false"],
            "replicas above 1 needs leaderElection.enabled",
        ),
        (
            ["--set=leaderElection.renewDeadlineSeconds=15"],
            "leaderElection.renewDeadlineSeconds must be below leaderElection.leaseSeconds",
        ),
        (
            ["--set=leaderElection.retrySeconds=10"],
            "leaderElection.retrySeconds must be below leaderElection.renewDeadlineSeconds",
        ),
        (
            ["--set=replicas=2", "--set=artifacts.persistence.enabled=true"],
            "artifacts.persistence with more than one operator pod needs accessModes "
            "[ReadWriteMany]",
        ),
        (
            ["--set=sharding.shards=3", "--set=artifacts.persistence.enabled=true"],
            "artifacts.persistence with more than one operator pod needs accessModes "
            "[ReadWriteMany]",
        ),
    ],
)
def test_unsafe_ha_values_fail_the_render_with_a_sentence(
    helm: Path, args: list[str], message: str
) -> None:
    result = chart.run_helm(
        helm, "template", "spikeprof", str(chart.CHART), chart.KUBE_VERSION, *args
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_a_shared_claim_that_every_pod_can_mount_is_accepted(helm: Path) -> None:
    objects = chart.render(
        helm,
        "--set=sharding.shards=3",
        "--set=artifacts.persistence.enabled=true",
        "--set=artifacts.persistence.accessModes={ReadWriteMany}",
    )
    claim = chart.only(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec(objects, "StatefulSet")["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize(
    "args",
    [["--set=replicas=2"], ["--set=sharding.shards=3"], ["--set=replicas=0"]],
    ids=["active/standby", "shards", "paused"],
)
def test_helm_lint_passes_in_strict_mode_for_each_ha_mode(helm: Path, args: list[str]) -> None:
    result = chart.run_helm(helm, "lint", "--strict", str(chart.CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
