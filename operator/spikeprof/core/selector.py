"""Kubernetes label selectors (matchLabels and matchExpressions), evaluated on a label map,
plus the session's own narrowing by Dapr app id and by pod name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        raise ValueError(f"unknown selector operator {self.operator!r}")


DAPR_APP_ID = "dapr.io/app-id"  # the annotation Dapr's injector reads the app id from


@dataclass(frozen=True)
class LabelSelector:
    """A label selector, plus selection by Dapr app id (an annotation, not a label) and by pod
    name (podNames: the one pod `kubectl spikeprof capture` names, where labels are shared by
    every replica)."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[Requirement, ...]
    dapr_app_id: str | None = None
    pod_names: frozenset[str] = frozenset()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LabelSelector:
        labels = tuple(sorted((spec.get("matchLabels") or {}).items()))
        requirements = tuple(
            Requirement(e["key"], e["operator"], frozenset(e.get("values") or ()))
            for e in spec.get("matchExpressions") or ()
        )
        names = frozenset(spec.get("podNames") or ())
        return cls(labels, requirements, spec.get("daprAppID") or None, names)

    @property
    def is_empty(self) -> bool:
        return (
            not self.match_labels
            and not self.requirements
            and not self.dapr_app_id
            and not self.pod_names
        )

    def matches(
        self,
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> bool:
        # Plain loops, not all() over generators: this runs for every pod of a namespace
        # whenever its pods change (10,000s of calls).
        if self.pod_names:
            if name not in self.pod_names:
                return False
        elif not self.match_labels and not self.requirements and not self.dapr_app_id:
            return False  # an empty selector selects nothing here, never everything
        if self.dapr_app_id and (annotations or {}).get(DAPR_APP_ID) != self.dapr_app_id:
            return False
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(requirement.matches(labels) for requirement in self.requirements)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for r in self.requirements:
            if r.operator in ("Exists", "DoesNotExist"):
                parts.append(r.key if r.operator == "Exists" else f"!{r.key}")
            else:
                values = ",".join(sorted(r.values))
                parts.append(f"{r.key} {r.operator.lower()} ({values})")
        if self.dapr_app_id:
            parts.append(f"Dapr app id {self.dapr_app_id}")
        if self.pod_names:
            parts.append(f"pod {' or '.join(sorted(self.pod_names))}")
        return ",".join(parts)
