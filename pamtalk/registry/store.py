"""Connecting to MLflow: a tracking server URL, or the local sqlite store with artifacts in
``./var/mlartifacts`` (the embedded default)."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient

from pamtalk.settings import Settings


def connect(settings: Settings) -> MlflowClient:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """The experiment's id, created on first use. With a local store its artifacts go to
    ./var/mlartifacts; a server decides for itself."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        location = (
            (Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts")
            .resolve()
            .as_uri()
        )
    return str(client.create_experiment(name, artifact_location=location))
