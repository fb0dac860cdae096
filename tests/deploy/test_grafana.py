"""Compose provisions the Grafana dashboard: its folder is mounted where the provider looks,
every panel reads the provisioned data source, and that data source is a Prometheus Grafana
can reach. (That the dashboard's metrics exist: tests/serving/test_dashboard_metrics.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GRAFANA = DEPLOY / "grafana"


def test_compose_provisions_the_dashboard_and_its_data_source() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    mounts = dict(
        (Path(target), (DEPLOY / source).resolve())
        for source, target, *_ in (v.split(":") for v in compose["grafana"]["volumes"])
        if source.startswith("./")
    )
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "pamtalk.yaml").read_text()
    )
    folder = Path(provider["providers"][0]["options"]["path"])
    assert mounts[folder] == (GRAFANA / "dashboards").resolve()
    assert mounts[Path("/etc/grafana/provisioning")] == (GRAFANA / "provisioning").resolve()

    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    host = urlparse(source["url"]).hostname
    assert host is not None and source["type"] == "prometheus"
    assert set(compose[host]["networks"]) & set(compose["grafana"]["networks"])

    dashboard = json.loads((GRAFANA / "dashboards" / "pamtalk.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
