"""Where a pod's pprof handlers answer: port, path, container, and the route to them.

Worked out from the session's target and the pod's annotations; a pod whose endpoint cannot be
worked out raises EndpointError with a message saying what is missing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from spikeprof.core.pods import PodInfo
from spikeprof.core.spec import DAPR_CONTAINER, DAPR_PROFILE_PORT, TargetSpec
from spikeprof.errors import SpikeprofError

PORT_ANNOTATION = "spikeprof.io/pprof-port"
PATH_ANNOTATION = "spikeprof.io/pprof-path"

# Port-forwarded endpoints get URLs under a reserved top-level domain (RFC 6761: .invalid never
# resolves), so that a URL meant for the tunnel can never be dialed as a real host by mistake.
PORT_FORWARD_DOMAIN = "port-forward.invalid"
_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")  # the CRD's pattern for spec.target.pathPrefix


@dataclass(frozen=True)
class Endpoint:
    """The pprof endpoint of one pod: base URL, the container that serves it, and the route."""

    base_url: str
    container: str | None
    # The route taken; a session's "auto" when none was (the endpoint could not be worked out).
    access: Literal["direct", "portForward", "auto"] = "direct"


class EndpointError(SpikeprofError, ValueError):
    """The pod's endpoint cannot be worked out; the message says what is missing."""


def pprof_port(pod: PodInfo, target: TargetSpec) -> int:
    """The session's port, else the pod's annotation, else Dapr's 7777 for kind dapr."""
    port = target.port
    if port is None and PORT_ANNOTATION in pod.annotations:
        try:
            port = int(pod.annotations[PORT_ANNOTATION])
        except ValueError:
            raise EndpointError(
                f"pod annotation {PORT_ANNOTATION}="
                f"{pod.annotations[PORT_ANNOTATION]!r} is not a port"
            ) from None
        if not 1 <= port <= 65535:
            raise EndpointError(f"pod annotation {PORT_ANNOTATION}={port} is not a TCP port")
    if port is None and target.kind == "dapr":
        port = DAPR_PROFILE_PORT
    if port is None:
        raise EndpointError(
            f"no pprof port: set spec.target.port or annotate the pod with {PORT_ANNOTATION}"
        )
    return port


def port_forward_host(namespace: str, pod: str) -> str:
    # Pod names may hold dots, namespaces may not: the namespace is the label before the domain.
    return f"{pod}.{namespace}.{PORT_FORWARD_DOMAIN}"


def pod_of_port_forward_host(host: str) -> tuple[str, str] | None:
    """(namespace, pod) named by a port-forward host, or None for any other host."""
    suffix = "." + PORT_FORWARD_DOMAIN
    if not host.endswith(suffix):
        return None
    pod, _, namespace = host.removesuffix(suffix).rpartition(".")
    if not pod or not namespace:
        return None
    return namespace, pod


def resolve_endpoint(
    pod: PodInfo, target: TargetSpec, access: Literal["direct", "portForward"] = "direct"
) -> Endpoint:
    """Where the pod's pprof handlers answer: by its IP, or by the API server's port-forward."""
    port = pprof_port(pod, target)
    if access == "direct" and not pod.ip:
        raise EndpointError("pod has no IP yet")
    # The pod's annotations describe its endpoint only when the session leaves the port open.
    path = target.path_prefix
    if target.port is None and PATH_ANNOTATION in pod.annotations:
        path = pod.annotations[PATH_ANNOTATION]
        # Whoever may annotate a pod must not steer the operator elsewhere: a path such as
        # "@other-host/..." would change the URL's host. Same rule as the CRD's pathPrefix.
        if len(path) > 256 or not _PATH.fullmatch(path):
            raise EndpointError(
                f"pod annotation {PATH_ANNOTATION}={path[:80]!r} is not a URL path such as "
                "/debug/pprof (letters, digits and . _ ~ / - only)"
            )
    container = target.container
    if container is None:
        if target.kind == "dapr":
            container = DAPR_CONTAINER
        elif pod.containers:
            container = pod.containers[0]
    if access == "portForward":
        host = port_forward_host(pod.namespace, pod.name)
    else:
        assert pod.ip is not None  # checked above
        try:
            address = ipaddress.ip_address(pod.ip)
        except ValueError:
            raise EndpointError(f"pod IP {pod.ip[:80]!r} is not an IP address") from None
        host = f"[{address}]" if address.version == 6 else str(address)
    return Endpoint(f"http://{host}:{port}{path.rstrip('/')}", container, access)
