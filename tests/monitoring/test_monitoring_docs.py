"""The example alert rules and Grafana dashboard name only metrics /metrics exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from console.monitoring.metrics import registry_for

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
_NAME = re.compile(r"\bfinci_[a-z_]+")
_SUFFIXES = ("_bucket", "_sum", "_count")


def exported(db_session) -> set[str]:
    names = set()
    for family in registry_for(db_session).collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in _SUFFIXES)
    return names


def _expressions() -> list[str]:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"]
                    for target in panel["targets"]]
    return expressions


def test_every_metric_the_examples_use_is_exported(db_session):
    names = exported(db_session)
    used = {name for expr in _expressions() for name in _NAME.findall(expr)}
    assert used, "the examples name no metric"
    assert used <= names, f"not exported: {sorted(used - names)}"


def test_every_alert_has_a_severity_and_a_summary():
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
