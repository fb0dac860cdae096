"""Shared fixtures: one tiny training run on synthetic data for the whole module set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pamtalk.models.demand.synthetic import synthetic
from pamtalk.training.demand import DemandConfig, train_demand
from pamtalk.training.result import TrainResult


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    return synthetic(n_series=10, days=420, seed=3)


@pytest.fixture(scope="session")
def tiny_run(
    small_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path]:
    out = tmp_path_factory.mktemp("demand-tiny")
    return train_demand(small_frame, DemandConfig.tiny(), out), out
