"""The pod cache decodes only the fields it reads: the record must be the one the whole JSON
gives, and everything else in a pod (managedFields, volumes ...) is skipped."""

from __future__ import annotations

import datetime
import json
from typing import Any

from spikeprof.adapters import api_json
from spikeprof.core.pods import Sharing, pod_info
from tests.unit.raw_replies import RawReply


def full_pod(name: str) -> dict[str, Any]:
    """A pod as the API server lists it, with the parts the operator never reads."""
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": "284",
            "creationTimestamp": "2026-12-02T02:20:25Z",
            "labels": {"app": "web", "pod-template-hash": "5d8f"},
            "annotations": {
                "dapr.io/app-id": "web",
                "spikeprof.io/pprof-port": "6060",
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}",
            },
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "r1"},
                {"kind": "ReplicaSet", "name": "web-5d8f", "controller": True, "uid": "r2"},
            ],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:x": {}}}}],
        },
        "spec": {
            "nodeName": "node-1",
            "volumes": [{"name": "token", "projected": {"sources": []}}],
            "containers": [
                {
                    "name": "app",
                    "image": "web:1",
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "1Gi"},
                        "requests": {"cpu": "250m", "memory": "512Mi"},
                    },
                },
                {"name": "daprd", "resources": {"limits": {"cpu": "1", "memory": "256Mi"}}},
            ],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T02:20:26Z"},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-12-02T02:21:00Z"}},
                    "lastState": {
                        "terminated": {
                            "reason": "OOMKilled",
                            "exitCode": 137,
                            "finishedAt": "2026-12-02T02:20:59Z",
                        }
                    },
                },
                {"name": "daprd", "restartCount": 0, "state": {"running": {}}},
            ],
        },
    }


def test_a_pod_decoded_from_the_fields_read_is_the_pod_the_whole_json_gives() -> None:
    body = full_pod("web-1")
    decoded = api_json.POD.decode(json.dumps(body).encode())
    assert pod_info(decoded.as_json()) == pod_info(body)


def test_a_list_page_decodes_every_pod_and_the_token_of_the_next_page() -> None:
    page = {
        "metadata": {"resourceVersion": "991", "continue": "next-token"},
        "items": [full_pod("web-1"), full_pod("web-2")],
    }
    decoded = api_json.POD_LIST.decode(json.dumps(page).encode())
    assert [p.metadata.name for p in decoded.items] == ["web-1", "web-2"]
    assert (decoded.metadata.resource_version, decoded.metadata.continue_) == ("991", "next-token")


def test_replicas_share_one_label_map_and_one_resources_record() -> None:
    sharing = Sharing()
    one, two = (pod_info(full_pod(name), sharing) for name in ("web-1", "web-2"))
    assert one.labels is two.labels
    assert one.resources is two.resources
    assert one.resources.cpu_limit == 1.5


def test_only_the_annotations_the_operator_reads_are_kept() -> None:
    assert dict(pod_info(full_pod("web-1")).annotations) == {
        "dapr.io/app-id": "web",
        "spikeprof.io/pprof-port": "6060",
    }


def test_an_error_event_is_read_without_decoding_its_status_as_a_pod() -> None:
    line = b'{"type":"ERROR","object":{"kind":"Status","status":"Failure","code":410}}'
    assert api_json.WATCH_EVENT.decode(line).type == "ERROR"


def test_pod_metrics_keep_name_timestamp_and_usage() -> None:
    listing = {
        "kind": "PodMetricsList",
        "items": [
            {
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                "timestamp": "2026-12-02T02:26:56Z",
                "window": "15s",
                "containers": [
                    {"name": "app", "usage": {"cpu": "12345n", "memory": "1024Ki"}},
                    {"name": "daprd", "usage": {"cpu": "5m"}},
                ],
            }
        ],
    }
    item = api_json.POD_METRICS_LIST.decode(json.dumps(listing).encode()).items[0]
    assert item.metadata.name == "web-1"
    assert item.timestamp == "2026-12-02T02:26:56Z"
    assert [(c.usage.cpu, c.usage.memory) for c in item.containers] == [
        ("12345n", "1024Ki"),
        ("5m", "0"),
    ]


class _MetricsApi:
    def __init__(self, listing: dict[str, Any]) -> None:
        self.body = json.dumps(listing).encode()

    async def list_namespaced_custom_object(self, *_: Any, **__: Any) -> RawReply:
        return RawReply(self.body)


async def test_pod_metrics_source_sums_containers_and_reads_any_quantity() -> None:
    from spikeprof.adapters.kube import PodMetricsSource
    from spikeprof.core.pods import PodInfo

    listing = {
        "items": [
            {
                "metadata": {"name": "web-1"},
                "timestamp": "2026-12-02T02:26:56Z",
                "containers": [
                    {"usage": {"cpu": "250000000n", "memory": "1024Ki"}},
                    {"usage": {"cpu": "0.5", "memory": "1Mi"}},
                ],
            },
            {"metadata": {"name": "not-selected"}, "containers": [{"usage": {"cpu": "1"}}]},
            {"metadata": {"name": "web-2"}, "containers": [{"usage": {"cpu": "bogus"}}]},
        ]
    }
    source = PodMetricsSource.__new__(PodMetricsSource)
    source.api = _MetricsApi(listing)
    pods = [pod_info(full_pod(name)) for name in ("web-1", "web-2")]
    assert all(isinstance(p, PodInfo) for p in pods)
    batch = await source.observe("shop", pods, frozenset({"cpu", "memory"}))
    assert [(o.pod, o.metric, o.value) for o in batch.observations] == [
        ("web-1", "cpu", 0.75),
        ("web-1", "memory", 2 * 1024 * 1024),  # 1024Ki + 1Mi
        ("web-2", "memory", 0.0),
    ]
    assert (
        batch.observations[0].at
        == datetime.datetime(2026, 12, 2, 2, 26, 56, tzinfo=datetime.UTC).timestamp()
    )
    assert (batch.reporting, batch.asked) == (2, 2)
