"""Baselines with the model's signature: predict(history, calendar) -> quantiles [N, 28, 3].

Both forecast a point and put p10/p90 around it from the empirical 10 % / 90 % quantiles of
their own one-step errors inside the 56-day history, clipped at 0 (demand is never negative).
"""

from __future__ import annotations

import numpy as np

from pamtalk.models.contract import DEMAND_HORIZON, DEMAND_LOOKBACK, DEMAND_QUANTILES

WEEK = 7
MOVING_AVERAGE_DAYS = 28


def seasonal_naive(history: np.ndarray, calendar: np.ndarray) -> np.ndarray:
    """Repeat the last observed week: day h forecasts the value of day h - 7k."""
    demand = history[:, :, 0].astype(np.float64)  # [N, 56]
    point = np.tile(demand[:, -WEEK:], DEMAND_HORIZON // WEEK)  # [N, 28]
    errors = demand[:, WEEK:] - demand[:, :-WEEK]  # [N, 49]: y_t - y_{t-7}
    return _with_band(point, errors)


def moving_average(
    history: np.ndarray, calendar: np.ndarray, days: int = MOVING_AVERAGE_DAYS
) -> np.ndarray:
    """The mean of the last ``days`` days, flat over the horizon."""
    demand = history[:, :, 0].astype(np.float64)  # [N, 56]
    level = demand[:, -days:].mean(axis=1, keepdims=True)  # [N, 1]
    point = np.repeat(level, DEMAND_HORIZON, axis=1)  # [N, 28]
    # One-step errors of the same rule, evaluated over the history's second half.
    past = np.stack(
        [demand[:, t - days : t].mean(axis=1) for t in range(days, DEMAND_LOOKBACK)], axis=1
    )  # [N, 56 - days]
    errors = demand[:, days:] - past
    return _with_band(point, errors)


def _with_band(point: np.ndarray, errors: np.ndarray) -> np.ndarray:
    low, high = DEMAND_QUANTILES[0], DEMAND_QUANTILES[-1]
    lo = np.quantile(errors, low, axis=1, keepdims=True)  # [N, 1]
    hi = np.quantile(errors, high, axis=1, keepdims=True)
    out = np.stack([point + np.minimum(lo, 0.0), point, point + np.maximum(hi, 0.0)], axis=2)
    return np.asarray(np.clip(out, 0.0, None), dtype=np.float32)  # [N, 28, 3]
