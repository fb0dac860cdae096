"""Registry fixtures: a fresh local MLflow store and small hand-built models on the ESG
contract, so gate tests do not depend on training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from pamtalk.models.contract import ESG, ESG_FEATURES, ModelContract
from pamtalk.registry import publish, store
from pamtalk.settings import Settings
from pamtalk.training import onnx_export
from pamtalk.training.candidate import Candidate


class TinyEsg(nn.Module):
    """(practices, mask) [N, F] -> scores [N, 4, 3], monotone quantiles in 0..100."""

    def __init__(self, broken: bool = False, flat: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2 * ESG_FEATURES, 12)
        self.broken, self.flat = broken, flat

    def forward(self, practices: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.linear(torch.cat([practices, mask], dim=1)).reshape(-1, 4, 3)
        scores = torch.cumsum(nn.functional.softplus(x), dim=2).clamp(max=100.0)
        if self.broken:
            scores = scores * torch.log(mask[:, :1].unsqueeze(2) - 2.0)  # log(<0) = NaN
        return scores[:, :, 1] if self.flat else scores


def example_inputs(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.random((n, ESG_FEATURES), dtype=np.float32),
        (rng.random((n, ESG_FEATURES)) > 0.2).astype(np.float32),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")


@pytest.fixture
def client(settings: Settings) -> MlflowClient:
    return store.connect(settings)


Register = Callable[..., str]


@pytest.fixture
def register(client: MlflowClient, settings: Settings, tmp_path: Path) -> Register:
    """Register a hand-built model with the given main-metric value; returns its version."""
    counter = iter(range(1000))

    def make(mae: float, model: nn.Module | None = None, contract: ModelContract = ESG) -> str:
        out = tmp_path / f"candidate{next(counter)}"
        example = example_inputs()
        path = out / "model.onnx"
        onnx_export.export(model or TinyEsg(), example, contract, path)
        candidate = Candidate(
            contract=contract,
            fp32=path,
            int8=None,
            metrics={"mae_complete": mae},
            params={"kind": "test"},
            example_inputs=example,
            fingerprint="test",
            table="",
        )
        return publish.register(client, settings, candidate)

    return make
