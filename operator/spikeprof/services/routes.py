"""How the operator reaches each pod's pprof endpoint: by its IP, or through the API server."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from spikeprof.core.endpoints import Endpoint, pprof_port, resolve_endpoint
from spikeprof.core.pods import PodInfo
from spikeprof.core.spec import TargetSpec

# Bounds the memory of answers; pods come and go, so old entries are simply forgotten.
MAX_REMEMBERED = 10_000
# How long "the pod IP did not accept" holds before the IP is dialed again.
RETRY_DIRECT_SECONDS = 60.0


class EndpointRouter:
    """Resolves endpoints by the session's access mode.

    direct and portForward are taken as told. auto dials the pod IP and port: accepted, the pod
    is reached directly from then on (a pod keeps its IP); refused or silent (no route, a
    NetworkPolicy, or pprof listening on localhost only, which the kubelet can still reach
    inside the pod), it is reached through port-forward, and the IP is tried again after
    RETRY_DIRECT_SECONDS (say, once profiling is armed).
    """

    def __init__(
        self,
        ip_accepts: Callable[[str, int], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ip_accepts = ip_accepts
        self.clock = clock
        # (pod uid, port) -> None: direct for good; a time: port-forward until then.
        self.routes: dict[tuple[str, int], float | None] = {}

    async def endpoint(self, pod: PodInfo, target: TargetSpec) -> Endpoint:
        """The endpoint to use; raises EndpointError when it cannot be worked out."""
        if target.access != "auto":
            return resolve_endpoint(pod, target, target.access)
        port = pprof_port(pod, target)
        if not pod.ip:
            return resolve_endpoint(pod, target, "portForward")
        key = (pod.uid, port)
        known = key in self.routes
        retry_at = self.routes.get(key)
        if not known or (retry_at is not None and self.clock() >= retry_at):
            if len(self.routes) >= MAX_REMEMBERED:
                self.routes.clear()
            accepted = await self.ip_accepts(pod.ip, port)
            self.routes[key] = None if accepted else self.clock() + RETRY_DIRECT_SECONDS
        direct = self.routes[key] is None
        return resolve_endpoint(pod, target, "direct" if direct else "portForward")
