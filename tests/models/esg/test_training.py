"""Tiny training end to end: the result's shape, evaluate() with any predictor, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pamtalk.models import contract
from pamtalk.training.esg import EsgConfig, train_esg
from pamtalk.training.result import TrainResult, torch_predictor

SCORES = contract.ESG_SCORES


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_esg(EsgConfig.tiny(), tmp_path_factory.mktemp("esg"))


def test_the_result(result: TrainResult) -> None:
    config = EsgConfig.tiny()
    practices, mask = result.example_inputs
    assert practices.shape == mask.shape == (8, contract.ESG_FEATURES)
    assert practices.dtype == mask.dtype == np.float32
    assert result.eval_inputs[0].shape == (config.n_eval, contract.ESG_FEATURES)
    assert not result.model.training
    for key in (
        "mae_complete",
        "mae_missing30",
        "coverage_missing30",
        *(f"mae_complete_{s}" for s in SCORES),
        *(f"mae_missing30_{s}" for s in SCORES),
    ):
        assert np.isfinite(result.metrics[key]), key
    assert 0 <= result.metrics["coverage_missing30"] <= 1
    assert "complete mae" in result.table and "overall" in result.table
    assert len(result.fingerprint) == 64
    assert all(isinstance(v, int | float | str | bool) for v in result.params.values())
    for path in result.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scores_follow_the_contract(result: TrainResult) -> None:
    scores = torch_predictor(result.model)(*result.eval_inputs)
    assert scores.shape == (len(result.eval_inputs[0]), 4, 3)
    assert scores.min() >= 0 and scores.max() <= 100
    assert (np.diff(scores, axis=-1) >= 0).all()


def test_evaluate_takes_any_predictor(result: TrainResult) -> None:
    again = result.evaluate(torch_predictor(result.model))
    assert again == {k: result.metrics[k] for k in again}
    assert set(again) >= {"mae_complete", "mae_missing30", "coverage_missing30"}

    def middle(practices: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.full((len(practices), 4, 3), 50.0, dtype=np.float32)

    assert result.evaluate(middle)["coverage_missing30"] == 0.0


def test_deterministic_under_a_seed(result: TrainResult, tmp_path: Path) -> None:
    again = train_esg(EsgConfig.tiny(), tmp_path)
    assert again.fingerprint == result.fingerprint
    for (name, a), b in zip(
        result.model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    timing = {"train_seconds"}
    assert {k: v for k, v in again.metrics.items() if k not in timing} == {
        k: v for k, v in result.metrics.items() if k not in timing
    }
