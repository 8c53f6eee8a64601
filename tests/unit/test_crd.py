"""The CRD is the single source of the API: every field explains itself to `kubectl explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CRD = Path(__file__).resolve().parents[2] / "crds" / "spikeprof.io_profilingsessions.yaml"


def _undescribed(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if schema.get("description") or path.endswith(".metadata") else [path]
    for name, child in (schema.get("properties") or {}).items():
        missing += _undescribed(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict) and schema["items"].get("type") == "object":
        missing += _undescribed(schema["items"], f"{path}[]")
    return missing


def test_every_field_has_a_description() -> None:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _undescribed(schema, "ProfilingSession") == []


def _rules(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = list(node.get("x-kubernetes-validations") or [])
        return found + [r for value in node.values() for r in _rules(value)]
    if isinstance(node, list):
        return [r for value in node for r in _rules(value)]
    return []


def test_every_cel_rule_has_a_message_for_people() -> None:
    rules = _rules(yaml.safe_load(CRD.read_text()))
    assert len(rules) >= 10
    assert all(len(rule.get("message", "")) > 20 for rule in rules)
