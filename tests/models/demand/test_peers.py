"""The peers (AutoETS, AutoTheta, LightGBM) are fitted in the training run and scored on
exactly the model's windows: same origins, same series, same days."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pamtalk.extras import MissingExtra
from pamtalk.models.contract import DEMAND_HORIZON
from pamtalk.models.demand import peers
from pamtalk.models.demand.evaluate import OVERALL, at_origin, evaluate_forecast
from pamtalk.models.demand.features import Panel, to_panel
from pamtalk.training.demand import DemandConfig, train_demand
from pamtalk.training.demand.train import rolling_origins

pytest.importorskip("statsforecast", reason="the peers need the 'forecast' extra")

PEER_KEYS = [
    f"{prefix}{peer}_{metric}"
    for peer in peers.PEERS
    for prefix in ("", "rolling_")
    for metric in ("mase", "wql", "coverage_p10_p90")
]


def our_windows(panel: Panel, origin: int) -> frozenset[tuple[str, pd.Timestamp]]:
    """The (series, day) pairs the model is scored on from ``origin``: at_origin's actuals
    are row i = series i, column h = day origin + h."""
    point = at_origin(panel, origin)
    days = panel.dates[origin : origin + DEMAND_HORIZON]
    expected = panel.demand[:, origin : origin + DEMAND_HORIZON].astype(np.float32)
    assert np.array_equal(point.actual, expected)
    return frozenset((series, day) for series in panel.series for day in days)


def test_peers_are_scored_on_our_windows(small_frame: pd.DataFrame) -> None:
    panel = to_panel(small_frame)
    config = DemandConfig.tiny()
    holdout = panel.days - DEMAND_HORIZON
    origins = rolling_origins(panel, config)
    assert len(origins) == 2 and origins[-1] == holdout
    at_holdout, rolling = peers.forecasts(panel, holdout, origins, seed=0)

    for peer in peers.PEERS:
        assert set(at_holdout.windows[peer]) == {holdout}
        assert set(rolling.windows[peer]) == set(origins)
        # The libraries' own labels (unique_id, ds) of what they forecast, per origin.
        for forecast, origin in [(at_holdout, holdout)] + [(rolling, o) for o in origins]:
            assert forecast.windows[peer][origin] == our_windows(panel, origin), (peer, origin)
            quantiles = forecast.quantiles[peer][origin]
            assert quantiles.shape == (len(panel.series), DEMAND_HORIZON, 3)
            assert (np.diff(quantiles, axis=2) >= 0).all() and (quantiles >= 0).all()
            scores = evaluate_forecast(at_origin(panel, origin), quantiles, panel.crops)
            for value in (scores[OVERALL].mase, scores[OVERALL].wql, scores[OVERALL].coverage):
                assert math.isfinite(value), (peer, origin)


def test_a_forecast_off_the_windows_is_refused(small_frame: pd.DataFrame) -> None:
    panel = to_panel(small_frame)
    origin = panel.days - DEMAND_HORIZON
    days = panel.dates[origin - 1 : origin - 1 + DEMAND_HORIZON]  # one day early
    shifted = pd.DataFrame(
        {
            "unique_id": np.repeat(panel.series, DEMAND_HORIZON),
            "ds": np.tile(days, len(panel.series)),
            **{c: 1.0 for c in ("lo", "mid", "hi")},
        }
    )
    with pytest.raises(ValueError, match="not the 280 of the evaluation windows"):
        peers.to_quantiles(shifted, ("lo", "mid", "hi"), panel, origin)


def test_training_scores_the_peers(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    result = train_demand(
        small_frame, dataclasses.replace(DemandConfig.tiny(), peers=True), tmp_path
    )
    for key in PEER_KEYS:
        assert math.isfinite(result.metrics[key]), key
    assert result.metrics["peers_seconds"] > 0
    for peer in peers.PEERS:
        assert f"| overall | 10 (0) | {peer} |" in result.table
        assert f"| rolling origins (mean) | 10 (0) | {peer} |" in result.table
    assert '"lightgbm_mase"' in (tmp_path / "metrics.json").read_text()


def test_without_the_extra_peers_are_skipped_or_refused(
    small_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # as if not installed
    result = train_demand(
        small_frame, dataclasses.replace(DemandConfig.tiny(), peers=None), tmp_path
    )
    assert "Peers skipped" in result.table and "pip install 'pamtalk[forecast]'" in result.table
    assert all(math.isnan(result.metrics[key]) for key in PEER_KEYS)
    with pytest.raises(MissingExtra, match=r"'forecast' extra \(statsforecast"):
        train_demand(small_frame, dataclasses.replace(DemandConfig.tiny(), peers=True), tmp_path)
