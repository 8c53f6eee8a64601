"""How the operator reaches each pod's pprof endpoint: by its IP, or through the API server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from spikeprof.core.pods import Endpoint, PodInfo, pprof_port, resolve_endpoint
from spikeprof.core.spec import TargetSpec

# Bounds the memory of answers; pods come and go, so old entries are simply forgotten.
MAX_REMEMBERED = 10_000


class EndpointRouter:
    """Resolves endpoints by the session's access mode.

    direct and portForward are taken as told. auto dials the pod IP once per pod and port: if the
    IP answers (even with a refusal: the route exists, nothing listens yet) the pod is dialed
    directly, else reached through port-forward. A pod keeps its IP, so the answer is kept.
    """

    def __init__(self, ip_answers: Callable[[str, int], Awaitable[bool]]) -> None:
        self.ip_answers = ip_answers
        self.direct: dict[tuple[str, int], bool] = {}

    async def endpoint(self, pod: PodInfo, target: TargetSpec) -> Endpoint:
        """The endpoint to use; raises EndpointProblem when it cannot be worked out."""
        if target.access != "auto":
            return resolve_endpoint(pod, target, target.access)
        port = pprof_port(pod, target)
        if not pod.ip:
            return resolve_endpoint(pod, target, "portForward")
        key = (pod.uid, port)
        if key not in self.direct:
            if len(self.direct) >= MAX_REMEMBERED:
                self.direct.clear()
            self.direct[key] = await self.ip_answers(pod.ip, port)
        return resolve_endpoint(pod, target, "direct" if self.direct[key] else "portForward")
