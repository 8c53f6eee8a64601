"""Reading coordination.k8s.io Leases as tests and benchmarks of replicas need them."""

from __future__ import annotations

from kubernetes import client  # type: ignore[import-untyped]


def lease_holder(api: client.ApiClient, namespace: str, name: str) -> str | None:
    """spec.holderIdentity of the Lease; None when it is absent or released."""
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None
