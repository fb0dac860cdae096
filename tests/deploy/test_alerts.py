"""The alert rules load in Prometheus and behave: `promtool check rules` and the unit tests
in deploy/prometheus/rules_test.yaml (each alert fires on a synthetic series that breaks it
and stays quiet on one that does not)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.services import tool

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
INSTALL = "apt-get install prometheus (Debian's package ships promtool)"


def promtool(*args: str) -> None:
    run = subprocess.run(
        [tool("promtool", INSTALL), *args], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_rules_and_config_are_valid() -> None:
    promtool("check", "rules", "rules.yaml")
    promtool("check", "config", "prometheus.yml")


def test_alerts_fire_and_stay_quiet_as_the_rule_tests_say() -> None:
    promtool("test", "rules", "rules_test.yaml")


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"HighResponseTime", "HighErrorRate", "DatabaseConnectionPoolExhausted"} <= alerts
    cases: list[dict[str, Any]] = [
        case
        for test in yaml.safe_load((PROMETHEUS / "rules_test.yaml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alerts == fires == quiet, (alerts - fires, alerts - quiet)


def test_the_seed_rules_keep_their_thresholds() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yaml").read_text())
    seed = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if g["name"] == "seed"}
    assert seed["HighResponseTime"]["for"] == "2m"
    assert "histogram_quantile(0.95," in seed["HighResponseTime"]["expr"]
    assert seed["HighResponseTime"]["expr"].endswith("> 2")
    assert seed["HighErrorRate"]["for"] == "1m"
    assert seed["HighErrorRate"]["expr"].endswith("> 0.01")
    assert seed["DatabaseConnectionPoolExhausted"]["for"] == "30s"
    assert seed["DatabaseConnectionPoolExhausted"]["expr"].endswith("> 0.8")


def test_every_alert_is_documented() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yaml").read_text())
    operations = (PROMETHEUS.parents[1] / "docs" / "operations.md").read_text()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert f"| {rule['alert']} " in operations, rule["alert"]
