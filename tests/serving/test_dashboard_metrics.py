"""Every metric the Grafana dashboard (deploy/grafana/dashboards/pamtalk.json) and the alert
rules query is one a running server exports on /metrics; after a request and a prediction,
the dashboard's main panels have samples to draw."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from pamtalk.db.models import Role
from tests.conftest import Actor
from tests.serving.test_predictions import AS_OF, add_demand

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pamtalk.json"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")
# PromQL words that look like names: aggregations, functions, keywords
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not a function or
    aggregation (followed by a parenthesis), a label (inside braces or a grouping clause),
    a keyword, or a Grafana variable."""
    bare = re.sub(r"\{[^}]*\}", "", GROUPING.sub("", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges, $__rate_interval included
    bare = re.sub(r"\$\w+", "", bare)
    names = set(re.findall(r"(?<![\w.$])([a-zA-Z_][a-zA-Z0-9_]*)\b(?!\s*\()", bare))
    return {n for n in names if n.lower() not in KEYWORDS}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return exprs


def test_the_name_extraction_reads_promql() -> None:
    expr = (
        'sum by (model, role) (rate(predictions_total{role!="shadow"}[5m])) / on (model) '
        "group_left sum by (model) (rate(x_total[$__rate_interval])) > bool 0"
    )
    assert metric_names(expr) == {"predictions_total", "x_total"}
    assert metric_names("label_values(request_total, route)") == {"request_total", "route"}


async def test_every_queried_metric_is_exported(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    # traffic: a listing (cached), a prediction (batched inference)
    headers = actors[Role.buyer].headers
    assert (await client.get("/v1/farms", headers=headers)).status_code == 200
    await add_demand(app, "cabbage", "jeju")
    body = {"crop": "cabbage", "region": "jeju", "as_of": AS_OF.isoformat(), "horizon_days": 7}
    response = await client.post("/v1/predictions/demand", json=body, headers=headers)
    assert response.status_code == 200, response.text

    families = list(text_string_to_metric_families((await client.get("/metrics")).text))
    exported = {f"{f.name}{s}" for f in families for s in SUFFIXES}
    sampled = {s.name for f in families for s in f.samples}

    queried = set().union(*(metric_names(e) for e in dashboard_queries()))
    labels = {"route", "model"}  # label_values(metric, label) in the variables
    assert len(queried - labels) >= 15
    assert queried - labels <= exported, sorted(queried - labels - exported)

    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    alerting = set().union(*(metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"]))
    assert alerting <= exported, sorted(alerting - exported)

    drawn = {
        "request_total",
        "request_duration_seconds_bucket",
        "cache_requests_total",
        "inference_batch_size_sum",
        "inference_queue_seconds_bucket",
        "inference_compute_seconds_bucket",
        "predictions_total",
        "model_version_info",
        "model_registry_up",
        "database_connection_pool",
    }
    assert drawn <= queried and drawn <= sampled, sorted(drawn - sampled)
