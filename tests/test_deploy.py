"""The deployment manifests parse, and the alert rules watch metrics the service exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import pamtalk.api.app
import pamtalk.serving.metrics  # noqa: F401

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def test_manifests_parse() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 5
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path


def test_alert_rules_use_exported_metrics() -> None:
    exported = {f"{m.name}{s}" for m in REGISTRY.collect() for s in SUFFIXES}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"([a-z_]+)(?=\{|\[)", rule["expr"]))
    assert used and used <= exported, used - exported
