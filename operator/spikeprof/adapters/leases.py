"""coordination.k8s.io/v1 Leases in one namespace, through kubernetes_asyncio's CoordinationV1Api.

Read, create, update (with the resourceVersion read: a concurrent write fails with
LeaseConflictError, never silently wins), list by label selector, release. Errors come out as
adapters.kube's: ApiUnavailableError when the API server is away, KubeError otherwise.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from spikeprof.adapters.kube import ApiUnavailableError, KubeError
from spikeprof.core.leases import Lease, released

REQUEST_SECONDS = 5.0
"""One Lease request; leader election bounds its requests tighter (by its renew deadline)."""

# Answers that mean "not now" rather than "no" (as adapters.kube reads them).
_UNAVAILABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class LeaseConflictError(KubeError):
    """Someone else wrote the Lease first (HTTP 409): the resourceVersion named is stale, or a
    Lease of that name was created meanwhile. Read it again and decide again."""


class LeaseForbiddenError(KubeError):
    """This identity may not read or write Leases there (RBAC: the chart grants get, create,
    update and list on leases in the release namespace)."""


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """The client's errors as the operator's own, naming the request."""
    try:
        yield
    except ApiException as error:
        if error.status == 409:
            raise LeaseConflictError(f"{what}: the Lease was changed meanwhile") from None
        if error.status in _UNAVAILABLE_STATUSES:
            raise ApiUnavailableError(
                f"{what}: the API server answered HTTP {error.status} {error.reason}"
            ) from None
        if error.status == 403:
            raise LeaseForbiddenError(f"{what}: forbidden: {error.body!r:.300}") from None
        raise KubeError(
            f"{what}: HTTP {error.status} {error.reason}: {error.body!r:.300}"
        ) from None
    # A connection refused or reset, or a request timeout: the API server is away.
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiUnavailableError(
            f"{what}: the API server is unreachable ({type(error).__name__}: {error})"
        ) from None


def _micro_time(at: datetime.datetime | None) -> str | None:
    """A MicroTime as the API server parses it (RFC 3339 with exactly six fraction digits)."""
    if at is None:
        return None
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware(at: datetime.datetime | None) -> datetime.datetime | None:
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=datetime.UTC)


def _body(namespace: str, lease: Lease) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": lease.name,
        "namespace": namespace,
        "labels": dict(lease.labels),
        "annotations": dict(lease.annotations),
    }
    if lease.resource_version is not None:
        metadata["resourceVersion"] = lease.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            # client-go writes "" for "nobody" when it releases; so do we.
            "holderIdentity": lease.holder or "",
            "leaseDurationSeconds": lease.duration_seconds,
            "renewTime": _micro_time(lease.renew_time),
            "acquireTime": _micro_time(lease.acquire_time),
            "leaseTransitions": lease.transitions,
        },
    }


def _lease(found: Any) -> Lease:
    """The client's V1Lease as the core's Lease."""
    metadata = found.metadata
    spec = found.spec
    return Lease(
        name=str(metadata.name),
        holder=spec.holder_identity or None,
        duration_seconds=int(spec.lease_duration_seconds or 0),
        renew_time=_aware(spec.renew_time),
        acquire_time=_aware(spec.acquire_time),
        transitions=int(spec.lease_transitions or 0),
        resource_version=metadata.resource_version,
        labels=dict(metadata.labels or {}),
        annotations=dict(metadata.annotations or {}),
    )


class LeaseClient:
    """The Leases of one namespace."""

    def __init__(
        self, api_client: Any, namespace: str, request_seconds: float = REQUEST_SECONDS
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        # Each request's own bound; callers that must finish sooner wrap it in asyncio.timeout.
        self.request_seconds = request_seconds

    async def read(self, name: str) -> Lease | None:
        """The Lease; None when it does not exist."""
        what = f"reading Lease {self.namespace}/{name}"
        with _mapped(what):
            try:
                found = await self.api.read_namespaced_lease(
                    name, self.namespace, _request_timeout=self.request_seconds
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
        return _lease(found)

    async def create(self, lease: Lease) -> Lease:
        """Create the Lease; LeaseConflictError when it exists already."""
        body = _body(self.namespace, lease)
        body["metadata"].pop("resourceVersion", None)
        with _mapped(f"creating Lease {self.namespace}/{lease.name}"):
            # A dict body, sent as it is: the model would write MicroTimes the server refuses
            # when their microseconds are 0 (datetime.isoformat leaves the fraction out).
            created = await self.api.create_namespaced_lease(
                self.namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=self.request_seconds,
            )
        return _lease(created)

    async def update(self, lease: Lease) -> Lease:
        """Replace the Lease, only if it is still at `lease.resource_version`.

        LeaseConflictError when anyone wrote it since it was read.
        """
        if lease.resource_version is None:
            raise ValueError(f"Lease {lease.name} has no resourceVersion: read it first")
        with _mapped(f"updating Lease {self.namespace}/{lease.name}"):
            updated = await self.api.replace_namespaced_lease(
                lease.name,
                self.namespace,
                _body(self.namespace, lease),  # type: ignore[arg-type]  # as in create
                _request_timeout=self.request_seconds,
            )
        return _lease(updated)

    async def list_selected(self, selector: str) -> list[Lease]:
        """The Leases whose labels match `selector` (e.g. "spikeprof.io/shard-group=shards")."""
        with _mapped(f"listing Leases in {self.namespace} ({selector})"):
            found = await self.api.list_namespaced_lease(
                self.namespace, label_selector=selector, _request_timeout=self.request_seconds
            )
        return [_lease(item) for item in found.items or ()]

    async def release(self, lease: Lease) -> Lease:
        """Give the Lease up (as client-go's ReleaseOnCancel): no holder, 1 s duration.

        `lease` is the one this holder last wrote; LeaseConflictError when someone else wrote
        it since (then it is not ours to release).
        """
        now = datetime.datetime.now(datetime.UTC)
        return await self.update(released(lease, now))
