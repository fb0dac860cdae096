"""`pip install pamtalk` without extras serves: its requirements pull no torch, Ray, Celery or
Locust (nor MLflow's server), the API serves a forecast from a registry trained elsewhere
with those modules unimportable, and a feature of a missing extra names the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ModelStore

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_ONLY = {"torch", "ray", "celery", "locust", "mlflow"}  # mlflow: the server, not the client


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution ``requirements`` pull in on this machine, following the metadata
    of the installed distributions (their markers, and the extras asked of each)."""
    seen: set[tuple[str, str]] = set()
    todo = [(req, extra) for req in requirements for extra in {"", *req.extras}]
    while todo:
        req, extra = todo.pop()
        name = canonicalize_name(req.name)
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} (required by the base package) is not installed here")
        for line in requires:
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                todo += [(sub, e) for e in {"", *sub.extras}]
    return {name for name, _ in seen}


def test_the_base_requirements_pull_no_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pulled = closure([Requirement(line) for line in project["dependencies"]])
    assert {"fastapi", "onnxruntime", "mlflow-skinny", "sqlalchemy", "redis"} <= pulled
    assert pulled & EXTRAS_ONLY == set()
    extras = project["optional-dependencies"]
    assert {"train", "ray", "gpu", "batch", "loadtest", "all", "dev"} <= set(extras)


def without_extras(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """tests/install/without_extras.py ARGS, the extras' modules blocked, embedded defaults."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_")}
    return subprocess.run(
        [sys.executable, "-m", "tests.install.without_extras", *args],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_serves_a_forecast_from_a_registry_trained_elsewhere(
    model_store: ModelStore, tmp_path: Path
) -> None:
    registry = model_store.copy(tmp_path / "store")
    run = without_extras("serve", registry, str(tmp_path / "pamtalk.db"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200, answer["body"]
    assert answer["body"]["model"] == "pamtalk-demand" and len(answer["body"]["forecast"]) == 7
    assert answer["loaded"] == []


@pytest.mark.parametrize(
    ("args", "env", "extra"),
    [
        (["train", "esg"], {}, "train"),
        (["worker"], {"PAMTALK_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//"}, "batch"),
        (["beat"], {"PAMTALK_CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}, "batch"),
        (["serve"], {"PAMTALK_SERVING_BACKEND": "ray"}, "ray"),
        (["scale", "pamtalk-esg", "--replicas", "2"], {}, "ray"),
        (["loadtest", "--scenario", "basic"], {}, "loadtest"),
        (["serve"], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, "tracing"),
    ],
)
def test_a_feature_of_a_missing_extra_names_it(
    args: list[str], env: dict[str, str], extra: str, tmp_path: Path
) -> None:
    run = without_extras("cli", *args, cwd=tmp_path, **env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"pip install 'pamtalk[{extra}]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_gpu_info_without_torch_says_how_to_get_it(tmp_path: Path) -> None:
    run = without_extras("cli", "gpu", "info", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "not installed (pip install 'pamtalk[train]')" in run.stdout
    assert "onnxruntime" in run.stdout
