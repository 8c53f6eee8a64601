"""The few fields of the API server's pod and PodMetrics JSON the operator reads, decoded by
msgspec straight from the bytes.

A pod's JSON is mostly what the operator never reads (managedFields, volumes, tolerations,
probes ...): decoding it whole into dicts costs most of a list's time and memory at 10,000
pods. msgspec skips the fields a Struct does not name without building them. The Structs mirror
the API's field names, so `msgspec.to_builtins` gives the JSON shape `core.pods.pod_info` reads.

None of them is tracked by the cyclic garbage collector (gc=False; arrays are tuples, which it
stops tracking once it sees they hold only untracked objects): a PodMetrics list of 10,000 pods
alive across a collection would otherwise be promoted to the oldest generation each cycle and
bring on full collections of everything the operator holds.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Owner(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    kind: str = ""
    name: str = ""
    controller: bool | None = None


class _Meta(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    deletion_timestamp: str | None = None
    owner_references: tuple[_Owner, ...] | None = None
    creation_timestamp: str | None = None
    resource_version: str | None = None  # where a watch ended is resumed from


class _Resources(msgspec.Struct, omit_defaults=True, gc=False):
    limits: dict[str, Any] | None = None
    requests: dict[str, Any] | None = None


class _Container(msgspec.Struct, omit_defaults=True, gc=False):
    name: str = ""
    resources: _Resources | None = None


class _Spec(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    node_name: str | None = None
    containers: tuple[_Container, ...] | None = None


class _Condition(msgspec.Struct, omit_defaults=True, gc=False):
    type: str = ""
    status: str = ""


class _Terminated(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    reason: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None


class _Running(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    started_at: str | None = None


class _State(msgspec.Struct, omit_defaults=True, gc=False):
    running: _Running | None = None
    terminated: _Terminated | None = None


class _ContainerStatus(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    name: str = ""
    restart_count: int = 0
    state: _State | None = None
    last_state: _State | None = None


class _Status(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    phase: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    conditions: tuple[_Condition, ...] | None = None
    container_statuses: tuple[_ContainerStatus, ...] | None = None


class Pod(msgspec.Struct, omit_defaults=True, gc=False):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)
    status: _Status = msgspec.field(default_factory=_Status)

    def as_json(self) -> dict[str, Any]:
        """The fields read, in the API's JSON shape (what core.pods.pod_info takes)."""
        shape: dict[str, Any] = msgspec.to_builtins(self)
        return shape


class _ListMeta(msgspec.Struct, rename="camel", gc=False):
    resource_version: str = ""
    continue_: str | None = msgspec.field(default=None, name="continue")


class PodList(msgspec.Struct, gc=False):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[Pod] = msgspec.field(default_factory=list)


class WatchEvent(msgspec.Struct, gc=False):
    """One line of a watch: the object is decoded as a Pod only for ADDED, MODIFIED and
    DELETED (an ERROR's object is a Status, a BOOKMARK's nearly empty)."""

    type: str = ""
    object: msgspec.Raw = msgspec.Raw(b"{}")


class _Usage(msgspec.Struct, gc=False):
    cpu: str = "0"
    memory: str = "0"


class _ContainerUsage(msgspec.Struct, gc=False):
    usage: _Usage = msgspec.field(default_factory=_Usage)


class _NameOnly(msgspec.Struct, gc=False):
    name: str = ""


class PodMetrics(msgspec.Struct, gc=False):
    metadata: _NameOnly = msgspec.field(default_factory=_NameOnly)
    timestamp: str | None = None
    containers: tuple[_ContainerUsage, ...] = ()


class PodMetricsList(msgspec.Struct, gc=False):
    items: list[PodMetrics] = msgspec.field(default_factory=list)


POD = msgspec.json.Decoder(Pod)
POD_LIST = msgspec.json.Decoder(PodList)
WATCH_EVENT = msgspec.json.Decoder(WatchEvent)
POD_METRICS_LIST = msgspec.json.Decoder(PodMetricsList)

DecodeError = msgspec.DecodeError
