"""The Kubernetes API, through kubernetes_asyncio: the only module that imports the client.

kopf does the watching and the events; this adapter writes session status from long-running
daemons (where kopf's own `patch` is not applied) and maps API errors to the operator's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import logging
import math
import os
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.stream import WsApiClient

from spikeprof.adapters import api_json
from spikeprof.core.arming import WorkloadRef
from spikeprof.core.observations import MetricsUnavailableError, ObservationBatch
from spikeprof.core.pods import PodInfo, Sharing, pod_info
from spikeprof.core.quantities import parse_quantity
from spikeprof.core.rules import Metric, Observation, new_observation
from spikeprof.errors import SpikeprofError

log = logging.getLogger("spikeprof.kube")

GROUP = "spikeprof.io"
VERSION = "v1alpha1"
PLURAL = "profilingsessions"


class SessionGoneError(SpikeprofError):
    """The session no longer exists: whatever was to be written about it has no home."""


class KubeError(SpikeprofError):
    """The API server refused or failed a request; the message says which and why."""


class ApiUnavailableError(KubeError):
    """The API server did not answer (down, restarting, overloaded): worth trying again later."""


# Answers that mean "not now" rather than "no": a restarting or overloaded API server.
_UNAVAILABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

REQUEST_SECONDS = 30.0  # one short request; an API server that hangs longer counts as away


@contextlib.contextmanager
def _reachable(what: str) -> Iterator[None]:
    """Turns "could not reach the API server" into ApiUnavailableError, naming the request."""
    try:
        yield
    except ApiException as error:
        if error.status in _UNAVAILABLE_STATUSES:
            raise ApiUnavailableError(
                f"{what}: the API server answered HTTP {error.status} {error.reason}"
            ) from None
        raise
    # A connection refused or reset, or a request timeout: the API server is away.
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiUnavailableError(
            f"{what}: the API server is unreachable ({type(error).__name__}: {error})"
        ) from None


async def connect(kubeconfig: str | None = None) -> Any:
    """An API client: in-cluster when running in a pod, else from the kubeconfig.

    Its configuration is the operator's one identity: kopf logs in with it too (`identity`).
    """
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG"),
            client_configuration=configuration,
        )
    if configuration.proxy is None:
        configuration.proxy = env_proxy(str(configuration.host))
    api_client = client.ApiClient(configuration)
    # kubernetes_asyncio's session trusts the environment, so aiohttp looks up ~/.netrc and the
    # proxy variables on a worker thread before every request: two thread hops, ~0.5 ms of
    # CPU per request on 2 shared cores (measured with aiohttp alone: ~0.8 ms against ~0.25).
    # The proxy is read once above instead; a netrc is never used (the client authenticates
    # with its own headers).
    api_client.rest_client.pool_manager._trust_env = False
    return api_client


def env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY (and NO_PROXY) name for `url`, as aiohttp's
    trust_env would find it before each request; None for none."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxy: str | None = urllib.request.getproxies().get(parts.scheme or "https")
    return proxy


def name_writes(api_client: Any, replica: str, version: str) -> None:
    """Every write of this client names the replica: the API server takes the field manager
    (metadata.managedFields[].manager) from the User-Agent up to its first "/", so that which
    replica wrote a session's status, and when, can be read from the object itself."""
    api_client.user_agent = f"spikeprof@{replica}/{version}"


@dataclass(frozen=True)
class Identity:
    """Where the API server is and how the operator proves who it is, as a login needs it."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None
    username: str | None
    password: str | None
    proxy_url: str | None


async def identity(api_client: Any) -> Identity:
    """The identity of `api_client`, read afresh: a rotated ServiceAccount token is re-read."""
    configuration = api_client.configuration
    # The refresh hook (in-cluster token file, exec plugins) runs inside this call.
    header: str | None = await configuration.get_api_key_with_prefix("BearerToken")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return Identity(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,  # the client writes inline data to temporary files
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        username=configuration.username or None,  # the client keeps "" for "not set"
        password=configuration.password or None,
        proxy_url=configuration.proxy,
    )


class SessionStatusWriter:
    def __init__(self, api_client: Any) -> None:
        self.api = client.CustomObjectsApi(api_client)

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch `.status` of a ProfilingSession (None values delete keys).

        Raises ApiUnavailableError when the API server is away (the caller keeps the patch).
        """
        what = f"patching status of ProfilingSession {namespace}/{name}"
        try:
            with _reachable(what):
                reply = await self.api.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    {"status": dict(status)},
                    # The generated default is JSON Patch; a status fragment is a merge patch.
                    _content_type="application/merge-patch+json",  # type: ignore[call-arg]
                    _request_timeout=REQUEST_SECONDS,
                    # The answer (the whole object) is read, not decoded: kopf's watch brings
                    # it, and decoding it after every write was ~15% of the loop's CPU in a
                    # burst of alerts.
                    _preload_content=False,
                )
                body = await reply.read()
                if not 200 <= reply.status <= 299:
                    refused = ApiException(status=reply.status, reason=reply.reason)
                    refused.body = body
                    raise refused
        except ApiException as error:
            if error.status == 404:
                raise SessionGoneError(f"{namespace}/{name}") from None
            raise KubeError(
                f"{what} failed: HTTP {error.status} {error.reason}: {error.body!r:.300}"
            ) from None


USAGE_METRICS: tuple[Metric, ...] = ("cpu", "memory")  # what PodMetrics reports


SHARED_LIST_SECONDS = 1.0  # a PodMetrics list this young is what a new one would say


class PodMetricsLists:
    """The PodMetrics list of each namespace, asked of the API server once for all the sessions
    of the namespace that evaluate at about the same time (PodMetricsSource.next_evaluation
    puts them on one schedule): one request, one decode, and one list of the namespace's pods
    by metrics-server, instead of one per session.

    A list is handed out for SHARED_LIST_SECONDS after it was asked for (metrics-server's
    samples are 15 s apart by default: it is as fresh as a new one), then dropped, so that a
    namespace of 10,000 pods does not keep its list between evaluations."""

    def __init__(self, fresh_seconds: float = SHARED_LIST_SECONDS) -> None:
        self.fresh_seconds = fresh_seconds
        self._latest: dict[str, tuple[float, api_json.PodMetricsList]] = {}
        self._asking: dict[str, asyncio.Task[api_json.PodMetricsList]] = {}

    async def get(
        self,
        namespace: str,
        fetch: Callable[[str], Awaitable[api_json.PodMetricsList]],
    ) -> api_json.PodMetricsList:
        """The namespace's list: a young one, the one being asked for, or a new one (`fetch`).
        A failure is every waiting session's (each says so in its status)."""
        latest = self._latest.get(namespace)
        if latest is not None and time.monotonic() - latest[0] < self.fresh_seconds:
            return latest[1]
        asking = self._asking.get(namespace)
        if asking is None or asking.done():
            asking = asyncio.create_task(self._ask(namespace, fetch))
            asking.add_done_callback(_retrieved)
            self._asking[namespace] = asking
        # One session's loop cancelled must not cancel the request the others wait for.
        return await asyncio.shield(asking)

    async def _ask(
        self,
        namespace: str,
        fetch: Callable[[str], Awaitable[api_json.PodMetricsList]],
    ) -> api_json.PodMetricsList:
        asked_at = time.monotonic()
        try:
            listing = await fetch(namespace)
        finally:
            self._asking.pop(namespace, None)
        entry = (asked_at, listing)
        self._latest[namespace] = entry
        asyncio.get_running_loop().call_later(self.fresh_seconds, self._forget, namespace, entry)
        return listing

    def _forget(self, namespace: str, entry: tuple[float, api_json.PodMetricsList]) -> None:
        if self._latest.get(namespace) is entry:
            del self._latest[namespace]


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Marks a shared request's failure as seen: the sessions waiting for it had it raised,
    and if they all stopped waiting, nobody is left to whom it matters."""
    if not task.cancelled():
        task.exception()


class PodMetricsSource:
    """The `metricsServer` source: PodMetrics from metrics.k8s.io, one list per namespace and
    evaluation, shared by the namespace's sessions (`shared`)."""

    shared: PodMetricsLists | None = None  # None: this source asks for its own lists

    def __init__(self, api_client: Any, shared: PodMetricsLists | None = None) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.shared = shared

    @staticmethod
    def next_evaluation(namespace: str, after: float, interval: float) -> float:
        """When to evaluate next, after one at monotonic time `after`: on a grid of `interval`
        whose phase depends only on the namespace, so that the namespace's sessions with the
        same interval evaluate together (one shared list) and namespaces spread over the
        interval; never sooner than half an interval, so evaluations stay about an interval
        apart."""
        phase = zlib.crc32(namespace.encode()) / 2**32 * interval
        steps = math.ceil((after + interval / 2 - phase) / interval)
        return phase + steps * interval

    async def observe(
        self, namespace: str, pods: Sequence[PodInfo], metrics: frozenset[Metric]
    ) -> ObservationBatch:
        wanted = {pod.name for pod in pods}
        if self.shared is None:
            listing = await self._list(namespace)
        else:
            listing = await self.shared.get(namespace, self._list)
        return _usage_observations(listing, wanted, metrics, len(pods))

    async def _list(self, namespace: str) -> api_json.PodMetricsList:
        """The namespace's PodMetrics, of which only the name, timestamp and usage are decoded
        (api_json); MetricsUnavailableError says why there are none."""
        where = f"metrics.k8s.io PodMetrics in {namespace}"
        try:
            reply = await self.api.list_namespaced_custom_object(
                "metrics.k8s.io",
                "v1beta1",
                namespace,
                "pods",
                _preload_content=False,
                _request_timeout=REQUEST_SECONDS,
            )
            listing: api_json.PodMetricsList = api_json.POD_METRICS_LIST.decode(await reply.read())
        except ApiException as error:
            hint = " (is metrics-server installed?)" if error.status in (404, 503) else ""
            raise MetricsUnavailableError(
                f"{where}: HTTP {error.status} {error.reason}{hint}"
            ) from None
        # The API server is away (restarting): no metrics this round, the session goes on.
        except (aiohttp.ClientError, TimeoutError) as error:
            raise MetricsUnavailableError(
                f"{where}: the API server is unreachable ({error!r})"
            ) from None
        except api_json.DecodeError as error:
            raise MetricsUnavailableError(f"{where}: not a PodMetrics list ({error})") from None
        return listing


def _usage_observations(
    listing: api_json.PodMetricsList, wanted: set[str], metrics: frozenset[Metric], asked_for: int
) -> ObservationBatch:
    """The usage of the pods `wanted` in a PodMetrics list, as observations."""
    asked = [m for m in USAGE_METRICS if m in metrics]
    observations: list[Observation] = []
    add = observations.append
    reporting = 0
    times: dict[str | None, float] = {}  # items share a few timestamps (one per scrape)
    # This loop runs for every pod of every evaluation: one pass, no call per item but the
    # usage's parse and the tuple's (new_observation, half the cost of Observation(...)).
    for item in listing.items:
        containers = item.containers
        name = item.metadata.name
        if not containers or name not in wanted:
            continue
        stamp = item.timestamp
        at = times.get(stamp)
        if at is None:
            at = times[stamp] = _timestamp(stamp)
        found = False
        for metric in asked:
            try:
                if len(containers) == 1:
                    value = _usage(getattr(containers[0].usage, metric))
                else:
                    value = sum(_usage(getattr(c.usage, metric)) for c in containers)
            except ValueError:
                continue  # one malformed item must not hide the other pods
            add(new_observation((name, metric, value, at)))
            found = True
        reporting += found
    return ObservationBatch(observations=tuple(observations), reporting=reporting, asked=asked_for)


def _usage(text: str) -> float:
    """A usage quantity: metrics-server writes CPU in nanocores ("12345n") and memory in
    kibibytes ("1024Ki"); those are read without a regular expression, others as any quantity."""
    if text[-1:] == "n":
        digits = text[:-1]
        if digits.isdigit():
            return int(digits) * 1e-9
    elif text[-2:] == "Ki":
        digits = text[:-2]
        if digits.isdigit():
            return int(digits) * 1024.0
    return parse_quantity(text)


def _timestamp(text: str | None) -> float:
    if not text:
        return time.time()
    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


class PodCache:
    """The pods of the namespaces that have sessions, kept current by one watch per namespace.

    kopf's own index handles each pod as an object of its own (a worker and a start-up toggle per
    pod), which takes minutes to settle at 10,000 pods; a plain list-then-watch costs one JSON
    decode per event. Nothing is ever written to a pod. Pods are decoded straight from the JSON
    (not into generated models) for the same reason, and only the fields read (api_json).
    """

    def __init__(self, api_client: Any) -> None:
        self.core = client.CoreV1Api(api_client)
        self._watches: dict[str, _NamespacePods] = {}

    async def acquire(self, namespace: str, wait_seconds: float = 60.0) -> None:
        """Start watching the namespace (once for all its sessions); wait for the first list."""
        watch = self._watches.get(namespace)
        if watch is None:
            watch = self._watches[namespace] = _NamespacePods(self.core, namespace)
        watch.refs += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.ready.wait(), wait_seconds)

    def release(self, namespace: str) -> None:
        watch = self._watches.get(namespace)
        if watch is None:
            return
        watch.refs -= 1
        if watch.refs <= 0:
            watch.task.cancel()
            del self._watches[namespace]

    def pods(self, namespace: str) -> list[PodInfo]:
        watch = self._watches.get(namespace)
        return list(watch.pods.values()) if watch is not None else []

    def watching(self, namespace: str) -> bool:
        return namespace in self._watches

    def version(self, namespace: str) -> int:
        """Changes whenever a pod of the namespace changes: callers cache what they derive."""
        watch = self._watches.get(namespace)
        return watch.version if watch is not None else -1

    async def lookup(self, namespace: str, name: str) -> PodInfo | None:
        """One pod as it is now (None: no such pod). From the cache when the namespace is
        watched; else read once, for a namespace another shard serves (an alert naming one of
        its pods). A list by name: the operator may list pods, not get them."""
        watch = self._watches.get(namespace)
        if watch is not None and watch.ready.is_set():
            return watch.pods.get(name)
        what = f"reading pod {namespace}/{name}"
        try:
            with _reachable(what):
                # The raw reply (_preload_content=False), decoded as the pod watches decode.
                reply: Any = await self.core.list_namespaced_pod(
                    namespace,
                    field_selector=f"metadata.name={name}",
                    _preload_content=False,
                    _request_timeout=REQUEST_SECONDS,
                )
                page = api_json.POD_LIST.decode(await reply.read())
        except ApiException as error:
            raise KubeError(f"{what}: HTTP {error.status} {error.reason}") from None
        return next((pod_info(item.as_json()) for item in page.items), None)

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.task.cancel()
        self._watches.clear()


WATCH_SECONDS = 300  # the API server ends a watch after this; we list again and go on
RETRY_SECONDS = 2.0
LIST_PAGE = 500  # pods per list request: bounds what one reply holds in memory


class _NamespacePods:
    def __init__(self, core: Any, namespace: str) -> None:
        self.core = core
        self.namespace = namespace
        self.pods: dict[str, PodInfo] = {}
        self.sharing = Sharing()  # replicas share their label maps and resource totals
        self.version = 0
        self.ready = asyncio.Event()
        self.refs = 0
        self.task = asyncio.create_task(self._run(), name=f"pod watch {namespace}")

    async def _run(self) -> None:
        failing_since: float | None = None  # one line when the API server goes, one when back
        version: str | None = None  # where the next watch starts; None: list first
        while True:
            try:
                if version is None:
                    version = await self._list()
                    if failing_since is not None:
                        log.info(
                            "Watching pods in %s again, after %.1f s.",
                            self.namespace,
                            time.monotonic() - failing_since,
                        )
                        failing_since = None
                    self.ready.set()
                # The API server ends each watch after WATCH_SECONDS: the next one resumes from
                # the last version seen, as client-go's reflector does. Listing every pod again
                # instead cost ~0.1 s of CPU at 10,000 pods every WATCH_SECONDS, and gave every
                # pod a new record (all selectors matched again).
                version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a broken watch must heal, not end the operator's view
                version = None  # events may have been missed: a list sets the pods right
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning(
                        "Watching pods in %s failed (%s: %s); the pods as last seen are kept, "
                        "and the watch is tried again every %.0f s.",
                        self.namespace,
                        type(error).__name__,
                        error,
                        RETRY_SECONDS,
                    )
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self) -> str:
        """All pods of the namespace, a page at a time: the decoded reply of one page, not of
        the whole namespace, is what the operator holds at once (its peak memory)."""
        pods: dict[str, PodInfo] = {}
        token: str | None = None
        while True:
            reply = await self.core.list_namespaced_pod(
                self.namespace,
                limit=LIST_PAGE,
                _continue=token,
                _preload_content=False,
                _request_timeout=REQUEST_SECONDS,
            )
            page = api_json.POD_LIST.decode(await reply.read())
            for item in page.items:
                pods[item.metadata.name] = pod_info(item.as_json(), self.sharing)
            token = page.metadata.continue_
            if not token:
                break
        self.pods = pods
        self.version += 1
        return page.metadata.resource_version

    async def _watch(self, version: str) -> str | None:
        """Apply the events of one watch from `version`; the version it ended at, or None when
        the API server no longer has it (a list is needed)."""
        reply = await self.core.list_namespaced_pod(
            self.namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=WATCH_SECONDS + 30,
        )
        async with reply:
            async for line in reply.content:
                if not line.strip():
                    continue
                event = api_json.WATCH_EVENT.decode(line)
                kind = event.type
                if kind == "ERROR":
                    return None  # typically 410 Gone: the version is too old; list again
                pod = api_json.POD.decode(event.object)
                version = pod.metadata.resource_version or version
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # BOOKMARK: only a newer version to resume from
                name = pod.metadata.name
                if kind == "DELETED":
                    self.pods.pop(name, None)
                elif name:
                    self.pods[name] = pod_info(pod.as_json(), self.sharing)
                self.version += 1
        return version


class SecretReader:
    """Reads the Secret a session names for its object-store credentials."""

    def __init__(self, api_client: Any) -> None:
        self.core = client.CoreV1Api(api_client)

    async def read(self, namespace: str, name: str) -> dict[str, str]:
        try:
            with _reachable(f"reading Secret {namespace}/{name}"):
                secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise KubeError(f"Secret {namespace}/{name} does not exist") from None
            if error.status == 403:
                raise KubeError(
                    f"the operator may not read Secret {namespace}/{name} "
                    "(the chart grants it with rbac.secrets=true)"
                ) from None
            raise KubeError(f"reading Secret {namespace}/{name}: HTTP {error.status}") from None
        return {
            key: base64.b64decode(value).decode("utf-8", "replace")
            for key, value in (secret.data or {}).items()
        }


class WorkloadApi:
    """Finds the workload that owns a pod, and patches its pod template (for arming)."""

    def __init__(self, api_client: Any) -> None:
        self.apps = client.AppsV1Api(api_client)
        self._deployment_of: dict[tuple[str, str], str | None] = {}  # ReplicaSet -> Deployment

    async def owner_workload(self, namespace: str, pod: PodInfo) -> WorkloadRef | None:
        """Deployment (through its ReplicaSet), StatefulSet or DaemonSet; None for bare pods."""
        if pod.owner is None:
            return None
        kind, name = pod.owner
        if kind in ("StatefulSet", "DaemonSet"):
            return WorkloadRef(kind, namespace, name)
        if kind != "ReplicaSet":
            return None
        if (namespace, name) not in self._deployment_of:
            try:
                with _reachable(f"reading ReplicaSet {namespace}/{name}"):
                    replica_set = await self.apps.read_namespaced_replica_set(name, namespace)
            except ApiException as error:
                raise KubeError(
                    f"reading ReplicaSet {namespace}/{name}: HTTP {error.status}"
                ) from None
            owners = replica_set.metadata.owner_references or ()
            self._deployment_of[(namespace, name)] = next(
                (o.name for o in owners if o.controller and o.kind == "Deployment"), None
            )
        deployment = self._deployment_of[(namespace, name)]
        return WorkloadRef("Deployment", namespace, deployment) if deployment else None

    async def annotations(self, ref: WorkloadRef) -> tuple[dict[str, str], dict[str, str]]:
        """(pod template annotations, workload annotations)."""
        try:
            with _reachable(f"reading {ref}"):
                workload = await self._call("read", ref)
        except ApiException as error:
            raise KubeError(f"reading {ref}: HTTP {error.status} {error.reason}") from None
        template = (
            workload.spec.template.metadata.annotations if workload.spec.template.metadata else None
        ) or {}
        return dict(template), dict(workload.metadata.annotations or {})

    async def patch(self, ref: WorkloadRef, body: Mapping[str, Any]) -> None:
        try:
            with _reachable(f"patching {ref}"):
                await self._call("patch", ref, body)
        except ApiException as error:
            if error.status == 404:
                return  # gone: nothing left to arm or restore
            raise KubeError(f"patching {ref}: HTTP {error.status} {error.reason}") from None

    async def _call(
        self, verb: str, ref: WorkloadRef, body: Mapping[str, Any] | None = None
    ) -> Any:
        suffix = {
            "Deployment": "deployment",
            "StatefulSet": "stateful_set",
            "DaemonSet": "daemon_set",
        }[ref.kind]
        method = getattr(self.apps, f"{verb}_namespaced_{suffix}")
        if verb == "read":
            return await method(ref.name, ref.namespace)
        return await method(
            ref.name, ref.namespace, dict(body or {}), _content_type="application/merge-patch+json"
        )


_PORT_FORWARD_HINTS = {
    401: "the operator's credentials were not accepted",
    403: (
        "the operator may not port-forward there: it needs create (and get) on pods/portforward "
        "in that namespace (Helm: rbac.portForward=true)"
    ),
    404: "the pod is gone",
    400: "the pod is not running, or the port is not valid",
    500: "the API server could not reach the pod's node (its kubelet)",
    502: "the API server could not reach the pod's node (its kubelet)",
    503: "the API server could not reach the pod's node (its kubelet)",
}


class PodPortForward:
    """Opens port-forward streams to pods through the API server's pods/portforward subresource.

    Each stream is one websocket (channel protocol v4.channel.k8s.io) carrying one TCP connection
    to one port of the pod; the API server passes it to the node's kubelet.
    """

    def __init__(self, api_client: Any, max_connections: int = 100) -> None:
        # A websocket client with the same credentials and CA (a shallow copy shares the token
        # and its refresh), with room for as many tunnels as the fetcher may open at once.
        configuration = copy.copy(api_client.configuration)
        configuration.connection_pool_maxsize = max_connections
        self._ws_client = WsApiClient(configuration=configuration)
        self._api = client.CoreV1Api(self._ws_client)
        self._reviews = client.AuthorizationV1Api(api_client)

    async def missing_rights(self, namespace: str) -> list[str]:
        """The verbs on pods/portforward in `namespace` the operator lacks (asked of the API
        server); empty when it may port-forward there.

        A websocket port-forward is a GET: authorized as `get`, and since Kubernetes 1.35
        (AuthorizePodWebsocketUpgradeCreatePermission) as `create` too. SelfSubjectAccessReviews
        may be created by every authenticated identity.
        """
        missing = []
        for verb in ("create", "get"):
            body = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=namespace, verb=verb, resource="pods", subresource="portforward"
                    )
                )
            )
            try:
                review = await self._reviews.create_self_subject_access_review(body)
            except ApiException as error:
                raise KubeError(
                    f"could not ask whether port-forward is allowed: HTTP {error.status} "
                    f"{error.reason}"
                ) from None
            except (aiohttp.ClientError, TimeoutError) as error:
                # An API server blip must not end the session's loop: unknown, asked again.
                raise KubeError(
                    f"could not ask whether port-forward is allowed: {error!r}"
                ) from None
            if not review.status.allowed:
                missing.append(verb)
        return missing

    async def open(self, namespace: str, pod: str, port: int) -> aiohttp.ClientWebSocketResponse:
        where = f"pod {namespace}/{pod} port {port}"
        try:
            # Typed as str; with _preload_content=False the websocket client returns the handshake.
            connecting: Any = await self._api.connect_get_namespaced_pod_portforward(
                pod, namespace, ports=port, _preload_content=False
            )
            websocket: aiohttp.ClientWebSocketResponse = await connecting
        except aiohttp.WSServerHandshakeError as error:
            hint = _PORT_FORWARD_HINTS.get(error.status, error.message)
            raise KubeError(
                f"the API server refused to port-forward to {where}: HTTP {error.status}, {hint}"
            ) from None
        except aiohttp.ClientError as error:
            raise KubeError(
                f"port-forward to {where} failed: cannot reach the API server: {error}"
            ) from None
        return websocket

    async def close(self) -> None:
        await self._ws_client.close()


class NotFoundError(KubeError):
    """The object, or its kind (a CRD not installed), does not exist."""


class ForbiddenError(KubeError):
    """The API server says this identity may not do that (RBAC)."""


def _api_message(error: ApiException) -> str:
    """The API server's own sentence from a Status body, else the HTTP reason."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(error.body or "{}").get("message")
        if message:
            return str(message)
    return f"HTTP {error.status} {error.reason}"


def _user_request_error(error: ApiException, what: str) -> KubeError:
    if error.status == 404:
        return NotFoundError(f"{what}: {_api_message(error)}")
    if error.status == 403:
        return ForbiddenError(f"{what}: {_api_message(error)}")
    if error.status == 401:
        return KubeError(f"{what}: the API server did not accept the kubeconfig's credentials")
    return KubeError(f"{what}: {_api_message(error)}")


async def connect_user(
    kubeconfig: str | None = None, context: str | None = None
) -> tuple[Any, str]:
    """A client as the person at the terminal (their kubeconfig, as kubectl reads it, never the
    in-cluster identity), and the namespace of the kubeconfig's context ("default" if none)."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        await config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
        contexts, active = config.list_kube_config_contexts(path)
    except (config.ConfigException, OSError) as error:
        raise KubeError(f"cannot use the kubeconfig: {error}") from None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return client.ApiClient(configuration), str(namespace)


class SessionApi:
    """What `kubectl spikeprof` does with the API as the user: read the pod, create, read and
    delete a ProfilingSession. Errors come out as NotFoundError, ForbiddenError or KubeError
    (ApiUnavailableError when the API server is away), each with the server's own reason."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    async def read_pod(self, namespace: str, name: str) -> PodInfo:
        what = f"reading pod {namespace}/{name}"
        try:
            with _reachable(what):
                pod = await self.core.read_namespaced_pod(
                    name, namespace, _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:
            raise _user_request_error(error, what) from None
        # Back to the API's JSON, which pod_info reads (as the pod cache gives it).
        return pod_info(self.api_client.sanitize_for_serialization(pod))

    async def create_session(self, namespace: str, body: Mapping[str, Any]) -> str:
        """Create the session; its name (the server's, when the body asks for generateName)."""
        what = f"creating a ProfilingSession in {namespace}"
        try:
            with _reachable(what):
                created = await self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, dict(body), _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:
            raise _user_request_error(error, what) from None
        return str(created["metadata"]["name"])

    async def read_session(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The session as stored; None once it is gone."""
        what = f"reading ProfilingSession {namespace}/{name}"
        try:
            with _reachable(what):
                found: dict[str, Any] = await self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _user_request_error(error, what) from None
        return found

    async def delete_session(self, namespace: str, name: str) -> bool:
        """Delete the session; False if it was already gone."""
        what = f"deleting ProfilingSession {namespace}/{name}"
        try:
            with _reachable(what):
                await self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:
            if error.status == 404:
                return False
            raise _user_request_error(error, what) from None
        return True
