"""Log a candidate to MLflow and register it as a new version of its model (the ``train``
extra: it imports PyTorch through the training pipeline)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import onnx
from mlflow import MlflowClient
from mlflow.models import infer_signature

from pamtalk.models.onnx_graph import predictor, session
from pamtalk.registry.digests import (
    FP32_DIGEST_TAG,
    INT8_DIGEST_TAG,
    INT8_SCHEME_TAG,
    file_digest,
)
from pamtalk.registry.store import experiment
from pamtalk.settings import Settings
from pamtalk.training import quantize
from pamtalk.training.candidate import Candidate
from pamtalk.training.pipeline import Data, build_candidate


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def register(client: MlflowClient, settings: Settings, candidate: Candidate) -> str:
    """One run with params, metrics, plots and both ONNX files; returns the new version."""
    contract = candidate.contract
    name = contract.registered_name
    example = [a[:2] for a in candidate.example_inputs]
    named_example = {spec.name: a for spec, a in zip(contract.inputs, example, strict=True)}
    example_output = predictor(session(candidate.fp32), contract)(*example)
    mlflow.set_experiment(experiment_id=experiment(client, settings, name))
    with mlflow.start_run(run_name=f"{name}-train"):
        mlflow.set_tags(
            {
                "fingerprint": candidate.fingerprint,
                "git_commit": git_commit(),
                "main_metric": contract.main_metric,
                # whether serving may use the int8 file (it is logged either way)
                "int8": "yes" if candidate.int8_ok else "no",
            }
        )
        mlflow.log_params(candidate.params)
        mlflow.log_metrics(candidate.metrics)
        mlflow.log_text(candidate.table, "evaluation.txt")
        mlflow.log_text(candidate.report, "export_report.txt")
        for plot in candidate.plots.values():
            mlflow.log_artifact(str(plot), artifact_path="plots")
        if candidate.int8 is not None:
            mlflow.log_artifact(str(candidate.int8), artifact_path="onnx")
            mlflow.set_tag(INT8_DIGEST_TAG, file_digest(candidate.int8))
            mlflow.set_tag(INT8_SCHEME_TAG, quantize.SCHEME)
        info = mlflow.onnx.log_model(
            onnx.load(str(candidate.fp32)),
            name="model",
            signature=infer_signature(named_example, example_output),
            input_example=named_example,
            registered_model_name=name,
            onnx_execution_providers=["CPUExecutionProvider"],
        )
    version = str(info.registered_model_version)
    # The digest of the file as MLflow stored it (log_model writes its own serialisation).
    stored = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")) / "model.onnx"
    client.set_model_version_tag(name, version, FP32_DIGEST_TAG, file_digest(stored))
    return version


def train_and_register(
    client: MlflowClient,
    settings: Settings,
    kind: str,
    *,
    out_dir: Path,
    data: Data = None,
    epochs: int | None = None,
    tiny: bool = False,
    first_run: bool = False,
) -> tuple[Candidate, str]:
    """Train (on pipeline.resolve_source's data), export, quantize, log and register;
    returns the candidate and its version."""
    built = build_candidate(
        kind, out_dir=out_dir, data=data, epochs=epochs, tiny=tiny, first_run=first_run
    )
    return built, register(client, settings, built)
