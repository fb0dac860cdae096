from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pamtalk.models.contract import DEMAND_CALENDAR_FEATURES
from pamtalk.models.demand.baselines import seasonal_naive
from pamtalk.models.demand.features import to_panel, windows
from pamtalk.models.demand.network import DemandNet
from pamtalk.training.demand import DemandConfig, train_demand
from pamtalk.training.demand.train import band_factor, split
from pamtalk.training.result import TrainResult, torch_predictor

HOLDOUT_KEYS = {"mase", "wape", "wql", "coverage_p10_p90"}


def test_result(tiny_run: tuple[TrainResult, Path], small_frame: pd.DataFrame) -> None:
    result, out = tiny_run
    assert not result.model.training
    history, calendar = result.example_inputs
    assert history.shape == (8, 56, 2) and calendar.shape == (8, 84, DEMAND_CALENDAR_FEATURES)
    assert history.dtype == np.float32 and calendar.dtype == np.float32
    series = small_frame["series"].nunique()
    assert result.eval_inputs[0].shape == (series, 56, 2)
    with torch.no_grad():
        q = result.model(torch.from_numpy(history), torch.from_numpy(calendar))
    assert q.shape == (8, 28, 3) and (q >= 0).all() and (q.diff(dim=2) >= 0).all()

    m = result.metrics
    for key in HOLDOUT_KEYS | {
        "seasonal_naive_mase",
        "moving_average_mase",
        "mase_ratio",
        "rolling_mase",
        "rolling_seasonal_naive_mase",
        "rolling_mase_ratio",
    }:
        assert math.isfinite(m[key]), key
    assert m["mase_ratio"] == pytest.approx(m["mase"] / m["seasonal_naive_mase"])
    assert 0 <= m["coverage_p10_p90"] <= 1
    assert "| overall |" in result.table and "seasonal_naive" in result.table
    assert result.params["series"] == series and result.params["rolling_origins"] == 2
    for name, path in result.plots.items():
        assert path.parent == out and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "evaluation.md").is_file() and (out / "metrics.json").is_file()


def test_evaluate_accepts_any_predictor(tiny_run: tuple[TrainResult, Path]) -> None:
    result, _ = tiny_run
    own = result.evaluate(torch_predictor(result.model))
    assert set(own) >= HOLDOUT_KEYS
    for key, value in own.items():
        assert value == pytest.approx(result.metrics[key], nan_ok=True), key
    naive = result.evaluate(seasonal_naive)
    for key in HOLDOUT_KEYS:
        assert naive[key] == pytest.approx(result.metrics[f"seasonal_naive_{key}"]), key


def test_deterministic_under_the_seed(
    tiny_run: tuple[TrainResult, Path], small_frame: pd.DataFrame, tmp_path: Path
) -> None:
    first, _ = tiny_run
    threads = torch.get_num_threads()
    again = train_demand(small_frame, DemandConfig.tiny(), tmp_path)
    assert torch.get_num_threads() == threads  # training restores the thread count
    a, b = first.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    volatile = {"train_seconds"}
    assert {k: v for k, v in first.metrics.items() if k not in volatile} == pytest.approx(
        {k: v for k, v in again.metrics.items() if k not in volatile}, nan_ok=True
    )
    assert first.fingerprint == again.fingerprint


def test_rolling_off_keeps_the_metric_keys(
    tiny_run: tuple[TrainResult, Path], small_frame: pd.DataFrame, tmp_path: Path
) -> None:
    config = dataclasses.replace(DemandConfig.tiny(), rolling=False)
    result = train_demand(small_frame, config, tmp_path)
    assert result.metrics.keys() == tiny_run[0].metrics.keys()
    assert math.isnan(result.metrics["rolling_mase"]) and result.params["rolling_origins"] == 0
    assert result.metrics["mase"] == pytest.approx(tiny_run[0].metrics["mase"])  # same model


def test_too_little_data_is_a_clear_error(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    short = small_frame[small_frame["date"] < small_frame["date"].min() + pd.Timedelta(days=90)]
    with pytest.raises(ValueError, match="no training windows"):
        train_demand(short, DemandConfig.tiny(), tmp_path)


def test_the_band_is_calibrated_on_the_validation_span(
    tiny_run: tuple[TrainResult, Path], small_frame: pd.DataFrame
) -> None:
    """Split conformal: the exported model's p10..p90 covers at least 80 % of the targets it
    was calibrated on (the validation windows), and p50 is what it was before."""
    result, _ = tiny_run
    model = result.model
    assert isinstance(model, DemandNet)
    factor = float(model.band_factor)
    assert factor > 0 and factor != 1.0 and result.metrics["band_factor"] == factor
    assert result.metrics["rolling_band_factor"] > 0

    config = DemandConfig.tiny()
    panel = to_panel(small_frame)
    parts = split(panel, panel.days - 28, config)
    history, calendar, target = windows(panel, *parts.val)
    calibrated = torch_predictor(model)(history, calendar)
    covered = (target >= calibrated[:, :, 0]) & (target <= calibrated[:, :, 2])
    assert covered.mean() >= 0.8

    model.band_factor.fill_(1.0)  # the network as fitted, before calibration
    try:
        raw = torch_predictor(model)(history, calendar)
    finally:
        model.band_factor.fill_(factor)
    np.testing.assert_allclose(calibrated[:, :, 1], raw[:, :, 1], rtol=1e-6)
    assert factor == pytest.approx(band_factor(model, history, calendar, target), rel=1e-6)


def test_without_conformal_the_band_is_as_fitted(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    config = dataclasses.replace(DemandConfig.tiny(), conformal=False, rolling=False)
    result = train_demand(small_frame, config, tmp_path)
    assert result.metrics["band_factor"] == 1.0
