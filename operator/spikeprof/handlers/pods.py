"""Pods are only indexed, never handled: nothing is ever written onto a pod."""

from __future__ import annotations

from typing import Any

import kopf

from spikeprof.core.pods import PodInfo, pod_info


@kopf.index("", "v1", "pods")
def pods_by_namespace(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, PodInfo]:
    return {namespace or "": pod_info(body)}
