"""Connecting to MLflow: a tracking server URL, or the local sqlite store with artifacts in
``./var/mlartifacts`` (the embedded default)."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from pamtalk.settings import Settings


def local_dir(settings: Settings) -> Path | None:
    """The folder of a local sqlite store (``./var`` by default); None for a server."""
    uri = settings.mlflow_tracking_uri
    return Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else None


def connect(settings: Settings) -> MlflowClient:
    # MLflow draws a progress bar for every artifact download (each model a serving process
    # loads, each gate check): noise in logs and in promote/canary/batch output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A tracking server that is down should fail a call in seconds, not after MLflow's
    # default 7 retries with exponential backoff (minutes): serving backs off by itself.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    uri = settings.mlflow_tracking_uri
    if (folder := local_dir(settings)) is not None:
        folder.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """The experiment's id, created on first use. With a local store its artifacts go beside
    it, in ./var/mlartifacts; a server decides for itself."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    folder = local_dir(settings)
    location = (folder / "mlartifacts").resolve().as_uri() if folder is not None else None
    return str(client.create_experiment(name, artifact_location=location))
