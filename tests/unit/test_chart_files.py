"""The Helm chart and deploy/: they lint, render for every documented values combination, grant
exactly the rights the operator uses, ship the CRD of crds/ unchanged, and stay in step."""

from __future__ import annotations

import collections
import importlib.util
import json
import re
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "spikeprof"
CRD_SOURCE = REPO_ROOT / "crds" / "spikeprof.io_profilingsessions.yaml"
CRD_IN_CHART = CHART / "files" / "crds" / "spikeprof.io_profilingsessions.yaml"
# The repository's helm has no version stamps, so its default (1.20) fails the chart's kubeVersion.
KUBE_VERSION = "--kube-version=1.37.2"

# What the operator does today, and nothing else (see "spikeprof.rules" in _helpers.tpl).
OPERATOR_RULES = [
    {
        "apiGroups": ["spikeprof.io"],
        "resources": ["profilingsessions"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["spikeprof.io"],
        "resources": ["profilingsessions/status"],
        "verbs": ["get", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # On by default (rbac.podMetrics): metricsServer is the default source of threshold triggers.
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]},
    # On by default (rbac.portForward): Dapr's sidecar serves pprof on the pod's loopback only.
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]},
]
PORT_FORWARD_RULE = {
    "apiGroups": [""],
    "resources": ["pods/portforward"],
    "verbs": ["create", "get"],
}
WORKLOAD_PATCHING_RULE = {
    "apiGroups": ["apps"],
    "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
    "verbs": ["get", "patch"],
}
POD_METRICS_RULE = {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]}

# Metrics and alert receiver Services; the view and edit ClusterRoles for people (rbac.userRoles);
# the Role and RoleBinding for the leader election's Lease in the release namespace.
BASE_KINDS = {
    "ServiceAccount": 1,
    "Service": 2,
    "Deployment": 1,
    "ClusterRole": 2,
    "Role": 1,
    "RoleBinding": 1,
}
CLUSTER_KINDS = {**BASE_KINDS, "ClusterRole": 3, "ClusterRoleBinding": 1}
CRD_KIND = {"CustomResourceDefinition": 1}

# Each documented values combination, with the kinds (and counts) it must render.
COMBINATIONS: dict[str, tuple[list[str], dict[str, int]]] = {
    "default": ([], {**CLUSTER_KINDS, **CRD_KIND}),
    "namespaced mode with two namespaces": (
        ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a,team-b}"],
        {**BASE_KINDS, **CRD_KIND, "Role": 3, "RoleBinding": 3},  # and the Lease's
    ),
    "persistent artifacts": (
        ["--set=artifacts.persistence.enabled=true"],
        {**CLUSTER_KINDS, **CRD_KIND, "PersistentVolumeClaim": 1},
    ),
    "persistent artifacts on an existing claim": (
        [
            "--set=artifacts.persistence.enabled=true",
            "--set=artifacts.persistence.existingClaim=mine",
        ],
        {**CLUSTER_KINDS, **CRD_KIND},
    ),
    "ServiceMonitor": (
        ["--set=metrics.serviceMonitor.enabled=true"],
        {**CLUSTER_KINDS, **CRD_KIND, "ServiceMonitor": 1},
    ),
    "no port-forward rights": (["--set=rbac.portForward=false"], {**CLUSTER_KINDS, **CRD_KIND}),
    "workload patching rights": (
        ["--set=rbac.workloadPatching=true"],
        {**CLUSTER_KINDS, **CRD_KIND},
    ),
    "PodMetrics rights": (["--set=rbac.podMetrics=true"], {**CLUSTER_KINDS, **CRD_KIND}),
    "CRD managed elsewhere": (["--set=crds.install=false"], CLUSTER_KINDS),
    "object-store secret": (
        ["--set=objectStore.existingSecret=s3-creds"],
        {**CLUSTER_KINDS, **CRD_KIND},
    ),
    "NetworkPolicy": (
        ["--set=networkPolicy.enabled=true"],
        {**CLUSTER_KINDS, **CRD_KIND, "NetworkPolicy": 1},
    ),
    "no roles for people": (
        ["--set=rbac.userRoles=false"],
        {**CLUSTER_KINDS, **CRD_KIND, "ClusterRole": 1},
    ),
    "metrics off": (
        ["--set=metrics.enabled=false"],
        {**CLUSTER_KINDS, **CRD_KIND, "Service": 1},  # the alert receiver's only
    ),
}


@pytest.fixture(scope="module")
def helm() -> Path:
    """The repository's helm (built once from its Go module, then cached)."""
    from localcluster.controlplane import build_binaries

    return build_binaries("helm") / "helm"


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(helm: Path, *args: str, release: str = "spikeprof") -> list[dict[str, Any]]:
    result = run_helm(
        helm, "template", release, str(CHART), "--namespace=spikeprof-system", KUBE_VERSION, *args
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}(s) rendered"
    return found[0]


def operator_role(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The operator's ClusterRole or Role (the roles for people are ClusterRoles too)."""
    return only([obj for obj in objects if obj["metadata"]["name"] == "spikeprof-controller"], kind)


def controller(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    container: dict[str, Any] = only(objects, kind)["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """The container's environment: each variable's value, or its valueFrom (the downward API)."""
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}


def load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO_ROOT / "tools" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- lint and render ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        # Every optional object on at once (the ServiceMonitor too: lint needs no CRD for it).
        [
            "--set=networkPolicy.enabled=true",
            "--set=artifacts.persistence.enabled=true",
            "--set=metrics.serviceMonitor.enabled=true",
            "--set=rbac.workloadPatching=true",
            "--set=rbac.secrets=true",
        ],
        ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a}"],
    ],
    ids=["defaults", "every optional object", "namespaced"],
)
def test_helm_lint_passes_in_strict_mode(helm: Path, args: list[str]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_each_documented_values_combination_renders_valid_objects_of_the_expected_kinds(
    helm: Path, combination: str
) -> None:
    args, kinds = COMBINATIONS[combination]
    objects = render(helm, *args)
    assert dict(collections.Counter(obj["kind"] for obj in objects)) == kinds
    for obj in objects:
        assert obj["apiVersion"] and obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "spikeprof"


def test_namespaced_mode_serves_each_namespace_with_a_role_and_nothing_cluster_wide(
    helm: Path,
) -> None:
    args, _ = COMBINATIONS["namespaced mode with two namespaces"]
    objects = render(helm, *args)
    roles = {
        obj["metadata"]["namespace"]: obj
        for obj in objects
        if obj["kind"] == "Role" and obj["metadata"]["name"] == "spikeprof-controller"
    }
    bindings = [
        obj
        for obj in objects
        if obj["kind"] == "RoleBinding" and obj["metadata"]["name"] == "spikeprof-controller"
    ]
    assert set(roles) == {"team-a", "team-b"}
    assert all(role["rules"] == OPERATOR_RULES for role in roles.values())
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "spikeprof-controller",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "spikeprof", "namespace": "spikeprof-system"}
        ]
    assert controller(objects)["args"] == [
        "run",
        "--liveness=http://0.0.0.0:8081/healthz",
        "--namespace=team-a",
        "--namespace=team-b",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set=watch.mode=namespaced"],
            "watch.mode=namespaced needs at least one namespace in watch.namespaces",
        ),
        (
            ["--set=watch.namespaces={team-a}"],
            "watch.namespaces is only used with watch.mode=namespaced",
        ),
        (
            ["--set=metrics.serviceMonitor.enabled=true", "--set=metrics.service.enabled=false"],
            "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled",
        ),
    ],
)
def test_contradictory_values_fail_the_render_with_a_sentence(
    helm: Path, args: list[str], message: str
) -> None:
    result = run_helm(helm, "template", "spikeprof", str(CHART), KUBE_VERSION, *args)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set=replicas=two"], "at '/replicas': got string, want integer"),
        (["--set=replicas=-1"], "at '/replicas': minimum"),
        (["--set=sharding.shards=0"], "at '/sharding/shards': minimum"),
        (["--set=leaderElection.leaseSeconds=0"], "at '/leaderElection/leaseSeconds': minimum"),
        (["--set=leaderElection.enabled=maybe"], "at '/leaderElection/enabled'"),
        (["--set=podAntiAffinity.zone=a"], "additional properties 'zone' not allowed"),
        (["--set=watch.mode=everywhere"], "at '/watch/mode': value must be one of"),
        (["--set=watch.namespaces={Not_A_Namespace}"], "at '/watch/namespaces/0'"),
        (["--set=image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set=metrics.port=99999"], "at '/metrics/port'"),
        (["--set=replica=1"], "additional properties 'replica' not allowed"),
        (["--set=networkPolicy.podPorts={0}"], "at '/networkPolicy/podPorts/0'"),
        (
            ["--set=networkPolicy.apiServer.cidrs={kubernetes}"],
            "at '/networkPolicy/apiServer/cidrs/0'",
        ),
        (["--set=rbac.userRoles=yes"], "at '/rbac/userRoles'"),
    ],
)
def test_values_schema_rejects_a_bad_value_with_helms_error(
    helm: Path, args: list[str], message: str
) -> None:
    result = run_helm(helm, "template", "spikeprof", str(CHART), KUBE_VERSION, *args)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in result.stderr
    assert message in result.stderr


# -- RBAC -----------------------------------------------------------------------------------


def test_default_rbac_is_exactly_the_rules_the_operator_uses(helm: Path) -> None:
    objects = render(helm)
    assert operator_role(objects, "ClusterRole")["rules"] == OPERATOR_RULES
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "spikeprof-controller"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spikeprof", "namespace": "spikeprof-system"}
    ]
    # In the release namespace, only the Lease's Role (see test_chart_ha.py): no other rights.
    assert [
        (obj["kind"], obj["metadata"]["name"])
        for obj in objects
        if obj["kind"] in ("Role", "RoleBinding")
    ] == [("Role", "spikeprof-leases"), ("RoleBinding", "spikeprof-leases")]


@pytest.mark.parametrize(
    ("flag", "rule"),
    [
        ("rbac.workloadPatching", WORKLOAD_PATCHING_RULE),
        ("rbac.secrets", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
    ],
)
@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_an_optional_rule_appears_only_with_its_flag(
    helm: Path, flag: str, rule: dict[str, Any], mode: str
) -> None:
    scope = ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a}"]
    kind = "Role" if mode == "namespaced" else "ClusterRole"
    args = scope if mode == "namespaced" else []
    without = operator_role(render(helm, *args), kind)["rules"]
    with_flag = operator_role(render(helm, *args, f"--set={flag}=true"), kind)["rules"]
    assert without == OPERATOR_RULES
    assert with_flag == [*OPERATOR_RULES, rule]


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_pod_metrics_rights_go_with_rbac_pod_metrics_false(helm: Path, mode: str) -> None:
    scope = ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a}"]
    kind = "Role" if mode == "namespaced" else "ClusterRole"
    args = scope if mode == "namespaced" else []
    rules = operator_role(render(helm, *args, "--set=rbac.podMetrics=false"), kind)["rules"]
    assert POD_METRICS_RULE not in rules
    assert rules == [rule for rule in OPERATOR_RULES if rule != POD_METRICS_RULE]


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_port_forward_rights_go_with_rbac_port_forward_false(helm: Path, mode: str) -> None:
    scope = ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a}"]
    kind = "Role" if mode == "namespaced" else "ClusterRole"
    args = scope if mode == "namespaced" else []
    rules = operator_role(render(helm, *args, "--set=rbac.portForward=false"), kind)["rules"]
    assert rules == [rule for rule in OPERATOR_RULES if rule != PORT_FORWARD_RULE]


def test_rbac_create_false_renders_no_roles_for_the_operator(helm: Path) -> None:
    objects = render(helm, "--set=rbac.create=false")
    assert {o["kind"] for o in objects}.isdisjoint({"ClusterRoleBinding", "Role", "RoleBinding"})
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole") == [
        "spikeprof-edit",
        "spikeprof-view",
    ]  # the roles for people are rbac.userRoles'


# -- roles for people -----------------------------------------------------------------------

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_view_and_edit_roles_for_people_aggregate_into_the_built_in_roles(
    helm: Path, mode: str
) -> None:
    scope = ["--set=watch.mode=namespaced", "--set=watch.namespaces={team-a}"]
    objects = render(helm, *(scope if mode == "namespaced" else []))
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    view, edit = roles["spikeprof-view"], roles["spikeprof-edit"]
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(AGGREGATE)} == {
        f"{AGGREGATE}view": "true",
        f"{AGGREGATE}edit": "true",
        f"{AGGREGATE}admin": "true",
    }
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(AGGREGATE)} == {
        f"{AGGREGATE}edit": "true",
        f"{AGGREGATE}admin": "true",
    }
    assert view["rules"] == [
        {
            "apiGroups": ["spikeprof.io"],
            "resources": ["profilingsessions", "profilingsessions/status"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    # Status is the operator's to write: people change the spec only.
    assert edit["rules"] == [
        {
            "apiGroups": ["spikeprof.io"],
            "resources": ["profilingsessions"],
            "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        }
    ]
    # Nothing binds them: they only add rules to the built-in roles.
    bound = {
        o["roleRef"]["name"] for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")
    }
    assert bound.isdisjoint(roles.keys() - {"spikeprof-controller"})


# -- NetworkPolicy --------------------------------------------------------------------------


def _ports(rule: dict[str, Any]) -> list[tuple[int, str]]:
    return [(port["port"], port["protocol"]) for port in rule["ports"]]


def test_network_policy_is_off_by_default(helm: Path) -> None:
    assert "NetworkPolicy" not in {o["kind"] for o in render(helm)}


def test_network_policy_allows_the_api_server_pods_dns_metrics_and_alerts_only(
    helm: Path,
) -> None:
    policy = only(render(helm, "--set=networkPolicy.enabled=true"), "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "spikeprof-system"
    assert (
        spec["podSelector"]["matchLabels"]
        == only(render(helm), "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = spec["ingress"]
    assert _ports(ingress) == [(8080, "TCP"), (9095, "TCP")]  # metrics, alerts
    assert "from" not in ingress  # networkPolicy.ingressFrom empty: anyone
    api_server, pods, dns = spec["egress"]
    assert _ports(api_server) == [(443, "TCP"), (6443, "TCP")] and "to" not in api_server
    assert _ports(pods) == [(7777, "TCP"), (9090, "TCP")]
    assert pods["to"] == [{"namespaceSelector": {}}]  # cluster mode: pods in any namespace
    assert _ports(dns) == [(53, "UDP"), (53, "TCP")] and "to" not in dns


def test_network_policy_follows_the_values_it_is_given(helm: Path) -> None:
    policy = only(
        render(
            helm,
            "--set=networkPolicy.enabled=true",
            "--set=watch.mode=namespaced",
            "--set=watch.namespaces={team-a,team-b}",
            "--set=networkPolicy.apiServer.cidrs={10.0.0.1/32}",
            "--set=networkPolicy.apiServer.ports={6443}",
            "--set=networkPolicy.podPorts={7777,6060}",
            "--set=networkPolicy.dns=false",
            "--set=metrics.enabled=false",
            '--set-json=networkPolicy.ingressFrom=[{"namespaceSelector":{}}]',
            '--set-json=networkPolicy.extraEgress=[{"ports":[{"port":9000}]}]',
        ),
        "NetworkPolicy",
    )
    spec = policy["spec"]
    [ingress] = spec["ingress"]
    assert _ports(ingress) == [(9095, "TCP")]  # no metrics port
    assert ingress["from"] == [{"namespaceSelector": {}}]
    api_server, pods, extra = spec["egress"]  # no DNS rule
    assert api_server == {
        "ports": [{"port": 6443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
    }
    assert _ports(pods) == [(7777, "TCP"), (6060, "TCP")]
    assert pods["to"] == [
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": ["team-a", "team-b"],
                    }
                ]
            }
        }
    ]
    assert extra == {"ports": [{"port": 9000}]}


def test_network_policy_with_metrics_and_alerts_off_admits_nothing(helm: Path) -> None:
    policy = only(
        render(
            helm,
            "--set=networkPolicy.enabled=true",
            "--set=metrics.enabled=false",
            "--set=alerts.enabled=false",
        ),
        "NetworkPolicy",
    )
    assert policy["spec"]["ingress"] == []


# -- the operator's pod ---------------------------------------------------------------------


def test_default_deployment_runs_one_locked_down_leader_elected_operator_with_probes(
    helm: Path,
) -> None:
    objects = render(helm)
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = controller(objects)
    assert deployment["spec"]["replicas"] == 1
    # One replica: the old pod stops first (an older release's holds no Lease).
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == "spikeprof"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["image"] == "ghcr.io/spikeprof/spikeprof:0.1.0"
    assert container["command"] == ["spikeprof"]
    assert container["args"] == ["run", "--liveness=http://0.0.0.0:8081/healthz"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "alerts"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8081, "metrics": 8080, "alerts": 9095}
    env = env_of(container)
    assert env["SPIKEPROF_ARTIFACT_ROOT"] == "/var/lib/spikeprof"
    assert env["SPIKEPROF_METRICS_PORT"] == "8080"
    assert env["SPIKEPROF_METRICS_ADDRESS"] == "0.0.0.0"
    assert env["SPIKEPROF_MAX_CONCURRENT_PODS"] == "32"
    assert float(env["SPIKEPROF_POLL_SECONDS"]) == 1.0
    assert env["SPIKEPROF_ALERTS_PORT"] == "9095"
    assert "SPIKEPROF_ALERTS_TOKEN_FILE" not in env
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts["/var/lib/spikeprof"]]
    assert "envFrom" not in container


def test_persistence_mounts_the_claim_at_the_artifact_root(helm: Path) -> None:
    objects = render(helm, "--set=artifacts.persistence.enabled=true", "--set=artifacts.root=/data")
    claim = only(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    mounts = {mount["mountPath"]: mount["name"] for mount in controller(objects)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    env = env_of(controller(objects))
    assert env["SPIKEPROF_ARTIFACT_ROOT"] == "/data"


def test_service_monitor_scrapes_the_metrics_service(helm: Path) -> None:
    objects = render(helm, "--set=metrics.serviceMonitor.enabled=true")
    monitor = only(objects, "ServiceMonitor")
    (service,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-metrics")
    ]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )


def test_object_store_secret_is_exposed_as_environment_only_when_named(helm: Path) -> None:
    container = controller(render(helm, "--set=objectStore.existingSecret=s3-creds"))
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_metrics_off_sets_the_metrics_port_to_zero(helm: Path) -> None:
    container = controller(render(helm, "--set=metrics.enabled=false"))
    env = env_of(container)
    assert env["SPIKEPROF_METRICS_PORT"] == "0"
    assert [port["name"] for port in container["ports"]] == ["health", "alerts"]


def test_the_alert_receiver_gets_its_token_tls_and_service_from_values(helm: Path) -> None:
    objects = render(
        helm,
        "--set=alerts.tokenSecret=am-token",
        "--set=alerts.tlsSecret=am-tls",
        "--set=prometheus.url=http://prom:9090",
        "--set=prometheus.tokenSecret=prom-token",
    )
    container = controller(objects)
    env = env_of(container)
    assert env["SPIKEPROF_ALERTS_TOKEN_FILE"] == "/etc/spikeprof/alerts-token/token"
    assert env["SPIKEPROF_ALERTS_TLS_CERT"] == "/etc/spikeprof/alerts-tls/tls.crt"
    assert env["SPIKEPROF_PROMETHEUS_URL"] == "http://prom:9090"
    assert env["SPIKEPROF_PROMETHEUS_TOKEN_FILE"] == "/etc/spikeprof/prometheus-token/token"
    # The receiver speaks TLS, and so does the readiness probe that asks it.
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "alerts",
        "scheme": "HTTPS",
    }
    volumes = {
        v["name"]: v["secret"]["secretName"]
        for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert volumes == {
        "alerts-token": "am-token",
        "alerts-tls": "am-tls",
        "prometheus-token": "prom-token",
    }
    (service,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "spikeprof"
    ]
    assert service["spec"]["ports"] == [
        {"name": "alerts", "port": 9095, "targetPort": "alerts", "protocol": "TCP"}
    ]


def test_alerts_off_runs_no_receiver(helm: Path) -> None:
    objects = render(helm, "--set=alerts.enabled=false")
    env = env_of(controller(objects))
    assert env["SPIKEPROF_ALERTS_PORT"] == "0"
    # No receiver, so no /readyz: readiness asks kopf's /healthz (nothing routes by it then).
    assert controller(objects)["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "health",
    }
    assert not [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "spikeprof"
    ]


def test_the_ui_is_off_by_default_and_gets_its_port_service_and_token_when_enabled(
    helm: Path,
) -> None:
    default = render(helm)
    assert "SPIKEPROF_UI_PORT" not in {var["name"] for var in controller(default)["env"]}
    assert not [o for o in default if o["metadata"]["name"] == "spikeprof-ui"]

    objects = render(helm, "--set=ui.enabled=true", "--set=ui.tokenSecret=ui-token")
    container = controller(objects)
    env = env_of(container)
    assert env["SPIKEPROF_UI_PORT"] == "8090"
    assert env["SPIKEPROF_UI_ADDRESS"] == "0.0.0.0"
    assert env["SPIKEPROF_UI_TOKEN_FILE"] == "/etc/spikeprof/ui-token/token"
    assert {"name": "ui", "containerPort": 8090, "protocol": "TCP"} in container["ports"]
    volumes = {
        v["name"]: v["secret"]["secretName"]
        for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert volumes["ui-token"] == "ui-token"
    (service,) = [o for o in objects if o["metadata"]["name"] == "spikeprof-ui"]
    assert service["kind"] == "Service"
    assert service["spec"]["ports"] == [
        {"name": "ui", "port": 8090, "targetPort": "ui", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"]
        == only(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_the_network_policy_admits_the_ui_port_when_the_ui_is_enabled(helm: Path) -> None:
    objects = render(helm, "--set=networkPolicy.enabled=true", "--set=ui.enabled=true")
    policy = only(objects, "NetworkPolicy")
    ports = [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]]
    assert 8090 in ports


# -- the CRD --------------------------------------------------------------------------------


def test_the_charts_crd_file_is_a_byte_for_byte_copy_of_crds() -> None:
    assert CRD_IN_CHART.read_bytes() == CRD_SOURCE.read_bytes(), (
        "charts/spikeprof/files/crds/ differs from crds/: run `make manifests`"
    )


def test_rendered_crd_equals_the_source_with_only_release_labels_and_keep_added(
    helm: Path,
) -> None:
    crd = only(render(helm), "CustomResourceDefinition")
    labels = crd["metadata"].pop("labels")
    annotations = crd["metadata"].pop("annotations")
    assert crd == yaml.safe_load(CRD_SOURCE.read_text())
    assert labels["app.kubernetes.io/name"] == "spikeprof"
    assert annotations == {"helm.sh/resource-policy": "keep"}


def test_crds_keep_false_drops_the_keep_annotation(helm: Path) -> None:
    crd = only(render(helm, "--set=crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]


def test_rendered_crd_has_its_yaml_anchors_expanded(helm: Path) -> None:
    result = run_helm(
        helm,
        "template",
        "spikeprof",
        str(CHART),
        KUBE_VERSION,
        "--show-only=templates/crd-profilingsessions.yaml",
    )
    assert result.returncode == 0, result.stderr
    assert "&capture" in CRD_SOURCE.read_text()
    assert not re.search(r"[&*]capture\b", result.stdout)
    crd = yaml.safe_load(result.stdout)
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["recentCaptures"]["items"] == status["properties"]["lastCapture"]


# -- deploy/ --------------------------------------------------------------------------------


def test_deploy_directory_is_identical_to_a_fresh_render_of_the_chart(helm: Path) -> None:
    renderer = load_renderer()
    found = renderer.differences(renderer.render(helm), REPO_ROOT / "deploy")
    assert found == [], f"deploy/ drifted from the chart ({found}): run `make manifests`"


def test_install_yaml_creates_the_namespace_first_and_holds_one_object_per_file() -> None:
    documents = list(yaml.safe_load_all((REPO_ROOT / "deploy" / "install.yaml").read_text()))
    assert documents[0]["kind"] == "Namespace"
    assert documents[0]["metadata"]["name"] == "spikeprof-system"
    files = sorted((REPO_ROOT / "deploy" / "spikeprof").glob("*.yaml"))
    assert [yaml.safe_load(path.read_text()) for path in files] == documents
    for path, document in zip(files, documents, strict=True):
        assert document["kind"].lower() in path.name
        assert document.get("metadata", {}).get("namespace", "spikeprof-system") == (
            "spikeprof-system"
        )


# -- values, image and versions -------------------------------------------------------------


def test_every_key_in_values_yaml_has_a_comment_above_it() -> None:
    undocumented, previous = [], ""
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[A-Za-z0-9_./-]+:", line) and not previous.lstrip().startswith("#"):
            undocumented.append(f"{number}: {line.strip()}")
        if line.strip():
            previous = line
    assert undocumented == []


def test_values_schema_describes_every_top_level_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_chart_app_version_is_the_operators_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_dockerfile_runs_spikeprof_as_the_non_root_user_the_chart_expects() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert re.search(
        rf"^USER {uid}:{values['podSecurityContext']['runAsGroup']}$", dockerfile, re.M
    )
    assert 'ENTRYPOINT ["spikeprof"]' in dockerfile
    assert 'CMD ["run"]' in dockerfile
    assert dockerfile.count("FROM ") == 2
