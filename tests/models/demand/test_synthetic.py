from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pamtalk.models.demand.synthetic import synthetic


def test_deterministic_under_the_seed() -> None:
    a, b = synthetic(n_series=6, days=120, seed=7), synthetic(n_series=6, days=120, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic(n_series=6, days=120, seed=8)
    assert not np.array_equal(a["demand_kg"].to_numpy(), c["demand_kg"].to_numpy())


def test_calendar_effects() -> None:
    frame = synthetic(n_series=12, days=2 * 365, seed=0, start=date(2022, 1, 1))
    assert (frame.loc[frame["date"].dt.day_of_week == 6, "demand_kg"] == 0).all()
    for closed in ("2022-02-01", "2023-01-23", "2022-09-10", "2023-01-01"):  # Seollal, Chuseok
        assert (frame.loc[frame["date"] == closed, "demand_kg"] == 0).all()
    # Price is only known where something traded.
    assert (frame.loc[frame["demand_kg"] == 0, "price_krw"] == 0).all()
    assert (frame.loc[frame["demand_kg"] > 0, "price_krw"] > 0).all()


def test_sparse_and_off_season_series() -> None:
    frame = synthetic(n_series=24, days=365, seed=0, start=date(2022, 1, 1))
    open_days = frame[frame["date"].dt.day_of_week < 6]
    zero_share = open_days.groupby("series")["demand_kg"].apply(lambda d: float((d == 0).mean()))
    assert zero_share.min() < 0.05  # dense series exist
    assert zero_share.max() > 0.4  # and sparse or seasonal ones
    tangerine = frame[frame["crop"] == "tangerine"]
    july = tangerine[tangerine["date"].dt.month == 7]["demand_kg"]
    december = tangerine[tangerine["date"].dt.month == 12]["demand_kg"]
    assert july.sum() == 0 and december.sum() > 0  # winter fruit, nothing in summer


def test_price_moves_demand_down() -> None:
    frame = synthetic(n_series=10, days=3 * 365, seed=2)
    dense = frame[(frame["demand_kg"] > 0) & (frame["crop"] == "lettuce")]
    # Deviations from each month's level: dearer days sell less.
    month = dense["date"].dt.to_period("M")
    log_price = np.log(dense["price_krw"]) - np.log(dense["price_krw"]).groupby(month).transform(
        "mean"
    )
    log_demand = np.log(dense["demand_kg"]) - np.log(dense["demand_kg"]).groupby(
        [month, dense["date"].dt.day_of_week]
    ).transform("mean")
    assert np.corrcoef(log_price, log_demand)[0, 1] < -0.05
