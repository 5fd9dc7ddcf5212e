"""The Grafana dashboard in deploy/grafana is built on metrics Tollway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tollway.telemetry.metrics_families import exported_names

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "tollway.json"
# A metric name in PromQL: what Tollway and the OpenTelemetry conventions name.
_METRIC = re.compile(r"\b((?:tollway|gen_ai)_[a-z0-9_]+)\b")
# What names labels, not metrics: grouping clauses and label matchers.
_LABEL_PARTS = re.compile(r"\b(?:by|without)\s*\([^)]*\)|\{[^}]*\}")
# Series a histogram or counter family adds to its name.
_SUFFIXES = ("_bucket", "_count", "_sum")


def _expressions(node: Any) -> list[str]:
    """Every PromQL text in the dashboard: panel targets and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                found.append(value["query"])
            else:
                found.extend(_expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_expressions(item))
    return found


def _metrics(text: str) -> list[str]:
    """The metric names a PromQL text selects."""
    return _METRIC.findall(_LABEL_PARTS.sub(" ", text))


def _family(name: str, exported: frozenset[str]) -> str:
    if name in exported:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in exported:
            return name.removesuffix(suffix)
    return name


def test_every_metric_the_dashboard_uses_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = exported_names()
    expressions = _expressions(dashboard)
    assert len(expressions) > 20
    used = {_family(name, exported) for text in expressions for name in _metrics(text)}
    assert used - exported == set()
    # Most of what is exported is on the dashboard.
    assert len(used) >= len(exported) - 2, sorted(exported - used)


def test_every_panel_queries_the_chosen_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names[0] == "datasource"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            text = target["expr"]
            assert text.count("(") == text.count(")"), text
            assert text.count("{") == text.count("}"), text
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
