"""The Helm chart installed into the local control plane gives its ServiceAccount enough to run
the operator, and no more: the operator, authenticated as that ServiceAccount, captures a session.

The chart's Deployment (or StatefulSet of shards) is installed too; the pod stand-in "runs" its
pods (as pprof-target processes, harmlessly). The operator under test runs here, as a process,
with a token of the chart's ServiceAccount and the lease settings of the chart's pod template, so
that every API call it makes, its Leases' too, goes through the chart's RBAC.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client  # type: ignore[import-untyped]
from localcluster.controlplane import ControlPlane
from localcluster.operator_process import OperatorProcess
from localcluster.sessions import (
    PLURAL,
    capture_dirs,
    create_pod,
    create_session,
    read_metadata,
    session_body,
    session_events,
    wait_captures,
    wait_running,
)

from .conftest import CRD, REPO_ROOT

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "spikeprof"
CRD_IN_CHART = CHART / "files" / "crds" / CRD.name
CRD_NAME = "profilingsessions.spikeprof.io"
SESSION_SPEC = {
    "selector": {"matchLabels": {"app": "web"}},
    "profiles": [{"type": "heap"}],
    "output": {"volume": {}},
}
# A denial by RBAC, as the API server words it; "forbidden" alone also covers namespaces that
# are being deleted, which a cluster-wide operator may meet (other tests' leftovers).
# The chart's settings that make the operator hold Leases (the rest, ports and paths, are the
# harness's: the operator runs here, not in the pod).
LEASE_SETTINGS = {
    "SPIKEPROF_IDENTITY",
    "SPIKEPROF_LEASE_NAMESPACE",
    "SPIKEPROF_LEADER_ELECTION_LEASE",
    "SPIKEPROF_SHARD_LEASE_PREFIX",
    "SPIKEPROF_LEASE_SECONDS",
    "SPIKEPROF_RENEW_DEADLINE_SECONDS",
    "SPIKEPROF_LEASE_RETRY_SECONDS",
}
RBAC_DENIAL = re.compile(r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot ')


@pytest.fixture
def helm(
    cluster: ControlPlane, bin_dir: Path, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    # helm keeps caches and settings under these; the test's own directory keeps $HOME clean.
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(tmp_path / "helm" / name.lower())

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def release_namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"spikeprof-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(Exception):
        core.delete_namespace(name)


def _can(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], user: str, *request: str
) -> bool:
    result = kubectl("auth", "can-i", *request, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


def _operator_env(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    release_namespace: str,
    identity: str,
) -> dict[str, str]:
    """The operator container's environment in the installed workload, with the downward API
    resolved for a pod named `identity` (as the kubelet would)."""
    [workload] = json.loads(
        kubectl("get", "deployments,statefulsets", "-n", release_namespace, "-o", "json").stdout
    )["items"]
    fields = {"metadata.name": identity, "metadata.namespace": release_namespace}
    env = {}
    for var in workload["spec"]["template"]["spec"]["containers"][0]["env"]:
        if var["name"] in LEASE_SETTINGS:
            value = var.get("value") or fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
            env[var["name"]] = value
    return env


@pytest.mark.parametrize(
    ("mode", "ha"),
    [("cluster", "leader"), ("namespaced", "shards")],
    ids=["cluster-leader-election", "namespaced-shards"],
)
def test_operator_running_as_the_charts_service_account_captures_a_session(
    mode: str,
    ha: str,
    cluster: ControlPlane,
    namespace: str,
    release_namespace: str,
    api: client.ApiClient,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    helm: Callable[..., subprocess.CompletedProcess[str]],
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # helm takes over the CRD the cluster fixture applied from crds/: the chart must hold the same.
    assert CRD_IN_CHART.read_bytes() == CRD.read_bytes(), "chart CRD is stale: make manifests"
    release = release_namespace  # contains "spikeprof": the objects are named after the release
    scope = (
        ["--set=watch.mode=namespaced", f"--set=watch.namespaces={{{namespace}}}"]
        if mode == "namespaced"
        else []
    )
    if ha == "shards":
        scope.append("--set=sharding.shards=2")
    installed = helm(
        "install",
        release,
        str(CHART),
        f"--namespace={release_namespace}",
        "--take-ownership",
        *scope,
    )
    served = f"in: {namespace}\n" if mode == "namespaced" else "in every namespace"
    assert served in installed.stdout, installed.stdout  # NOTES.txt
    print(installed.stdout)
    user = f"system:serviceaccount:{release_namespace}:{release}"
    try:
        # What the ServiceAccount may do: exactly the operator's work, where it serves.
        assert _can(kubectl, user, "list", "pods", "-n", namespace)
        assert _can(kubectl, user, "watch", f"{PLURAL}.spikeprof.io", "-n", namespace)
        assert _can(
            kubectl,
            user,
            "patch",
            f"{PLURAL}.spikeprof.io",
            "--subresource=status",
            "-n",
            namespace,
        )
        assert _can(kubectl, user, "create", "events", "-n", namespace)
        assert not _can(kubectl, user, "get", "pods", "-n", namespace)
        assert not _can(kubectl, user, "patch", "pods", "-n", namespace)
        assert not _can(kubectl, user, "patch", "events", "-n", namespace)
        assert not _can(kubectl, user, "create", f"{PLURAL}.spikeprof.io", "-n", namespace)
        # rbac.portForward is on by default (Dapr's pprof listens on the pod's loopback only).
        # `can-i create pods/portforward` would ask about a pod named portforward: name the
        # subresource instead.
        for verb in ("create", "get"):
            assert _can(kubectl, user, verb, "pods", "--subresource=portforward", "-n", namespace)
        assert not _can(kubectl, user, "create", "pods", "-n", namespace)
        assert not _can(kubectl, user, "patch", "deployments.apps", "-n", namespace)
        assert not _can(kubectl, user, "list", "secrets", "-n", namespace)
        assert not _can(kubectl, user, "list", "namespaces")
        assert not _can(kubectl, user, "list", "customresourcedefinitions")
        assert _can(kubectl, user, "list", "pods", "-n", release_namespace) == (mode == "cluster")
        # Leases: in the release namespace only; list only for shards; never watch or delete.
        for verb in ("get", "create", "update"):
            assert _can(kubectl, user, verb, "leases.coordination.k8s.io", "-n", release_namespace)
            assert not _can(kubectl, user, verb, "leases.coordination.k8s.io", "-n", namespace)
        assert _can(
            kubectl, user, "list", "leases.coordination.k8s.io", "-n", release_namespace
        ) == (ha == "shards")
        for verb in ("watch", "delete", "patch"):
            assert not _can(
                kubectl, user, verb, "leases.coordination.k8s.io", "-n", release_namespace
            )
        assert not _can(kubectl, user, "list", "leases.coordination.k8s.io", "--all-namespaces")

        kubeconfig = cluster.service_account_kubeconfig(
            release_namespace, release, tmp_path / "service-account.kubeconfig"
        )
        identity = f"{release}-0"  # a pod's name, as the downward API gives it
        operator = OperatorProcess(
            kubeconfig,
            tmp_path / "artifacts",
            tmp_path / "operator.log",
            [namespace] if mode == "namespaced" else [],
            env=_operator_env(kubectl, release_namespace, identity),
        )
        lease_env = (
            "SPIKEPROF_LEADER_ELECTION_LEASE" if ha == "leader" else "SPIKEPROF_SHARD_LEASE_PREFIX"
        )
        assert lease_env in operator.env, operator.env
        assert operator.env["SPIKEPROF_LEASE_NAMESPACE"] == release_namespace
        operator.start()
        try:
            create_pod(api, namespace, "chart-0", {"app": "chart"})
            wait_running(api, namespace, "app=chart", 1, wait_for)
            spec = {
                "selector": {"matchLabels": {"app": "chart"}},
                "target": {"kind": "pprof", "port": 7777},
                "profiles": [{"type": "heap"}, {"type": "goroutine"}],
                "trigger": {"immediate": True},
                "output": {"volume": {}},
            }
            create_session(api, namespace, session_body("via-chart", spec))
            status = wait_captures(api, namespace, "via-chart", 1, wait_for)
            assert status["captures"]["total"] == 1, operator.log()
            # It acted as the holder of its Lease, created with the chart's Role.
            lease_name = (
                operator.env[lease_env]
                if ha == "leader"
                else f"{operator.env[lease_env]}-{identity}"
            )
            lease = client.CoordinationV1Api(api).read_namespaced_lease(
                lease_name, release_namespace
            )
            assert lease.spec.holder_identity == identity
            if ha == "shards":
                assert lease.metadata.labels["spikeprof.io/shard-group"] == operator.env[lease_env]
            assert status["captures"]["failed"] == 0
            assert status["lastCapture"]["result"] == "Succeeded"
            [directory] = capture_dirs(operator.artifact_root)
            assert directory.parts[-4:-1] == (namespace, "via-chart", "chart-0")
            files = {p["file"] for p in read_metadata(directory)["profiles"]}
            assert files == {"heap.pb.gz", "goroutine.pb.gz"}
            assert all((directory / name).stat().st_size > 0 for name in files)
            # The operator's events were created with the ServiceAccount's rights (kopf posts
            # them in the background, so they may follow the status by a moment).
            wait_for(
                lambda: (
                    {"CaptureStarted", "Captured"}
                    <= {reason for _, reason, _ in session_events(api, namespace, "via-chart")}
                ),
                30,
                "events CaptureStarted and Captured",
            )

            # Deleting the session lets the operator remove its finalizer (patch).
            client.CustomObjectsApi(api).delete_namespaced_custom_object(
                "spikeprof.io", "v1alpha1", namespace, PLURAL, "via-chart"
            )
            wait_for(
                lambda: (
                    kubectl("get", PLURAL, "via-chart", "-n", namespace, check=False).returncode
                    != 0
                ),
                30,
                "the session to be deleted",
            )
        finally:
            operator.stop()
            print(operator.log()[-20000:])  # pytest shows it when the test fails
        log = operator.log()
        assert not RBAC_DENIAL.findall(log), log
        assert "Not enough permissions" not in log, log
    finally:
        helm("uninstall", release, f"--namespace={release_namespace}", check=False)

    # crds.keep: the CRD, and every session in the cluster, outlive the release.
    assert kubectl("get", "crd", CRD_NAME, check=False).returncode == 0
    roles = kubectl("get", "clusterroles,clusterrolebindings", "-o", "name").stdout
    assert f"{release}-controller" not in roles


def test_people_bound_to_built_in_edit_create_sessions_and_those_bound_to_view_only_read(
    cluster: ControlPlane,
    namespace: str,
    release_namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    helm: Callable[..., subprocess.CompletedProcess[str]],
    wait_for: Callable[..., Any],
) -> None:
    release = release_namespace
    helm("install", release, str(CHART), f"--namespace={release_namespace}", "--take-ownership")
    editor, viewer, admin = (f"{who}-{release}" for who in ("editor", "viewer", "admin"))
    try:
        # The built-in roles, bound in one namespace, as a cluster admin grants them to people.
        for user, role in ((editor, "edit"), (viewer, "view"), (admin, "admin")):
            kubectl(
                "create",
                "rolebinding",
                user,
                f"--clusterrole={role}",
                f"--user={user}",
                "-n",
                namespace,
            )
        sessions = f"{PLURAL}.spikeprof.io"
        # kube-controller-manager's clusterrole-aggregation controller copies the chart's rules
        # into the built-in roles; that takes a moment after the install.
        wait_for(
            lambda: (
                _can(kubectl, editor, "create", sessions, "-n", namespace)
                and _can(kubectl, viewer, "list", sessions, "-n", namespace)
            ),
            60,
            "the chart's roles to be aggregated into edit and view",
        )
        assert _can(kubectl, admin, "delete", sessions, "-n", namespace)
        # Status is the operator's: the edit role leaves it out.
        assert not _can(kubectl, editor, "patch", sessions, "--subresource=status", "-n", namespace)
        assert _can(kubectl, viewer, "get", sessions, "--subresource=status", "-n", namespace)
        assert not _can(kubectl, editor, "create", sessions, "-n", release_namespace)

        body = yaml.safe_dump(session_body("by-editor", SESSION_SPEC))
        kubectl("apply", "-n", namespace, f"--as={editor}", "-f", "-", input=body)
        got = kubectl("get", PLURAL, "by-editor", "-n", namespace, f"--as={viewer}", "-o", "name")
        assert got.stdout.strip() == "profilingsession.spikeprof.io/by-editor"
        refused = kubectl(
            "apply",
            "-n",
            namespace,
            f"--as={viewer}",
            "-f",
            "-",
            input=yaml.safe_dump(session_body("by-viewer", SESSION_SPEC)),
            check=False,
        )
        assert refused.returncode != 0
        assert f'User "{viewer}" cannot create resource "{PLURAL}"' in refused.stderr
        refused = kubectl(
            "delete", PLURAL, "by-editor", "-n", namespace, f"--as={viewer}", check=False
        )
        assert f'User "{viewer}" cannot delete resource "{PLURAL}"' in refused.stderr
        kubectl("delete", PLURAL, "by-editor", "-n", namespace, f"--as={editor}", "--wait=false")
    finally:
        helm("uninstall", release, f"--namespace={release_namespace}", check=False)
    # Uninstalled, the roles and so their aggregated rules are gone again.
    wait_for(
        lambda: not _can(kubectl, editor, "create", f"{PLURAL}.spikeprof.io", "-n", namespace),
        60,
        "the aggregated rules to leave the edit role",
    )


def test_the_api_server_accepts_every_optional_object_the_chart_renders(
    release_namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    helm: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # Every flag that adds or changes an object (the ServiceMonitor needs prometheus-operator's
    # CRD, which this cluster does not have).
    rendered = helm(
        "template",
        release_namespace,
        str(CHART),
        f"--namespace={release_namespace}",
        "--kube-version=1.37.2",  # the repository's helm has no version stamps of its own
        "--set=networkPolicy.enabled=true",
        "--set=networkPolicy.apiServer.cidrs={127.0.0.1/32}",
        '--set-json=networkPolicy.ingressFrom=[{"namespaceSelector":{}}]',
        "--set=artifacts.persistence.enabled=true",
        "--set=rbac.workloadPatching=true",
        "--set=rbac.secrets=true",
        "--set=ui.enabled=true",
        "--set=ui.tokenSecret=ui-token",
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"NetworkPolicy", "PersistentVolumeClaim", "ClusterRole"} <= kinds
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    assert "networkpolicy.networking.k8s.io/" in result.stdout, result.stdout
    assert f"service/{release_namespace}-ui" in result.stdout, result.stdout
    assert f"clusterrole.rbac.authorization.k8s.io/{release_namespace}-edit" in result.stdout


def test_the_api_server_accepts_the_shards_statefulset_its_services_and_budget(
    release_namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    helm: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    rendered = helm(
        "template",
        release_namespace,
        str(CHART),
        f"--namespace={release_namespace}",
        "--kube-version=1.37.2",
        "--set=crds.install=false",
        "--set=sharding.shards=3",
        "--set=artifacts.persistence.enabled=true",
        "--set=artifacts.persistence.accessModes={ReadWriteMany}",
    ).stdout
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    for accepted in (
        f"statefulset.apps/{release_namespace}",
        f"service/{release_namespace}-shards",
        f"poddisruptionbudget.policy/{release_namespace}",
        f"role.rbac.authorization.k8s.io/{release_namespace}-leases",
        f"rolebinding.rbac.authorization.k8s.io/{release_namespace}-leases",
    ):
        assert accepted in result.stdout, result.stdout
