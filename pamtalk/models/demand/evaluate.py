"""Forecast metrics on held-out time, per crop and overall, for any predictor.

- MASE: mean absolute error of p50, divided per series by the mean absolute error of the
  7-day seasonal naive inside that series' training part (everything before the forecast
  origin); the mean over series. A series whose training part has no such error (all zero,
  or perfectly weekly) has no scale and is skipped (``n_skipped`` says how many).
- WAPE: sum |y - p50| / sum |y| over series and days.
- wQL: the mean over p10/p50/p90 of 2 * sum pinball / sum |y| (GluonTS's weighted quantile
  loss).
- coverage_p10_p90: the share of actual values inside [p10, p90] (ideal: 0.8).
A metric whose denominator is zero (no demand at all in the scope) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pamtalk.models.contract import DEMAND_HORIZON, DEMAND_QUANTILES
from pamtalk.models.demand.features import Panel, windows

SEASON = 7
OVERALL = "overall"
# predict(history [N, 56, 2], calendar [N, 84, C]) -> quantiles [N, 28, 3] in kg
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def pinball(actual: np.ndarray, forecast: np.ndarray, tau: float) -> np.ndarray:
    """Elementwise pinball (quantile) loss of ``forecast`` as the ``tau`` quantile."""
    diff = np.asarray(actual - forecast, dtype=np.float64)
    out: np.ndarray = np.maximum(tau * diff, (tau - 1.0) * diff)
    return out


def seasonal_scale(train: np.ndarray, season: int = SEASON) -> np.ndarray:
    """[S] in-sample MAE of the seasonal naive forecast y_t = y_{t-season}; NaN if too short."""
    if train.shape[1] <= season:
        return np.full(train.shape[0], np.nan)
    out: np.ndarray = np.mean(np.abs(train[:, season:] - train[:, :-season]), axis=1)
    return out


def mase(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> tuple[float, int]:
    """(mean MASE over series with a positive scale, number of series skipped).
    actual and forecast [S, H], scale [S]."""
    usable = np.isfinite(scale) & (scale > 0)
    if not usable.any():
        return math.nan, len(scale)
    per_series = np.mean(np.abs(actual - forecast), axis=1)[usable] / scale[usable]
    return float(np.mean(per_series)), int((~usable).sum())


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    total = float(np.abs(actual).sum())
    return float(np.abs(actual - forecast).sum()) / total if total > 0 else math.nan


def weighted_quantile_loss(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] = DEMAND_QUANTILES
) -> float:
    """actual [..., H], quantiles [..., H, Q]."""
    total = float(np.abs(actual).sum())
    if total <= 0:
        return math.nan
    losses = [
        2.0 * float(pinball(actual, quantiles[..., i], tau).sum()) / total
        for i, tau in enumerate(levels)
    ]
    return float(np.mean(losses))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    if actual.size == 0:
        return math.nan
    return float(np.mean((actual >= lower) & (actual <= upper)))


@dataclass(frozen=True)
class Scores:
    mase: float
    wape: float
    wql: float
    coverage: float
    n_series: int
    n_skipped: int  # series without a MASE scale

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}mase": self.mase,
            f"{prefix}wape": self.wape,
            f"{prefix}wql": self.wql,
            f"{prefix}coverage_p10_p90": self.coverage,
        }


def score(actual: np.ndarray, quantiles: np.ndarray, scale: np.ndarray) -> Scores:
    """actual [S, H], quantiles [S, H, 3], scale [S]."""
    m, skipped = mase(actual, quantiles[:, :, 1], scale)
    return Scores(
        mase=m,
        wape=wape(actual, quantiles[:, :, 1]),
        wql=weighted_quantile_loss(actual, quantiles),
        coverage=coverage(actual, quantiles[:, :, 0], quantiles[:, :, -1]),
        n_series=int(actual.shape[0]),
        n_skipped=skipped,
    )


def score_by_crop(
    actual: np.ndarray, quantiles: np.ndarray, scale: np.ndarray, crops: Sequence[str]
) -> dict[str, Scores]:
    """Scores per crop (sorted) and ``"overall"``."""
    crop_array = np.asarray(crops)
    out = {
        crop: score(
            actual[crop_array == crop], quantiles[crop_array == crop], scale[crop_array == crop]
        )
        for crop in sorted(set(crops))
    }
    out[OVERALL] = score(actual, quantiles, scale)
    return out


@dataclass(frozen=True)
class Origin:
    """Every series forecast from one origin: the first forecast day is day ``origin``."""

    origin: int
    history: np.ndarray  # [S, 56, 2]
    calendar: np.ndarray  # [S, 84, C]
    actual: np.ndarray  # [S, 28]
    scale: np.ndarray  # [S] seasonal-naive MAE before the origin


def at_origin(panel: Panel, origin: int) -> Origin:
    if origin < 1 or origin + DEMAND_HORIZON > panel.days:
        raise ValueError(f"origin {origin} leaves no full {DEMAND_HORIZON}-day target")
    n = len(panel.series)
    history, calendar, actual = windows(panel, np.arange(n), np.full(n, origin - 1))
    return Origin(origin, history, calendar, actual, seasonal_scale(panel.demand[:, :origin]))


def evaluate_at(
    point: Origin, predict: Predictor, crops: Sequence[str], batch: int = 4096
) -> dict[str, Scores]:
    quantiles = np.concatenate(
        [
            np.asarray(predict(point.history[i : i + batch], point.calendar[i : i + batch]))
            for i in range(0, len(point.history), batch)
        ]
    )
    return evaluate_forecast(point, quantiles, crops)


def evaluate_forecast(
    point: Origin, quantiles: np.ndarray, crops: Sequence[str]
) -> dict[str, Scores]:
    """Scores of forecasts [S, 28, 3] already made from ``point`` (a peer's, say) on its
    actuals and scales: the same windows as evaluate_at."""
    if quantiles.shape[:2] != point.actual.shape:
        raise ValueError(
            f"forecasts {quantiles.shape} do not match the origin's {point.actual.shape}"
        )
    return score_by_crop(
        point.actual.astype(np.float64), quantiles.astype(np.float64), point.scale, crops
    )


def mean_scores(scores: Sequence[Scores]) -> Scores:
    """The mean of several origins' scores (NaNs ignored)."""

    def avg(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    return Scores(
        mase=avg([s.mase for s in scores]),
        wape=avg([s.wape for s in scores]),
        wql=avg([s.wql for s in scores]),
        coverage=avg([s.coverage for s in scores]),
        n_series=max((s.n_series for s in scores), default=0),
        n_skipped=max((s.n_skipped for s in scores), default=0),
    )


def format_table(
    holdout: Mapping[str, Mapping[str, Scores]],
    rolling: Mapping[str, Scores] | None = None,
    rolling_label: str = "rolling mean",
) -> str:
    """A Markdown table: rows = scope x method (``holdout[method][scope]``)."""
    methods = list(holdout)
    scopes = list(next(iter(holdout.values())))
    lines = [
        "| scope | series (no MASE scale) | method | MASE | WAPE | wQL | p10-p90 coverage |",
        "|---|---|---|---:|---:|---:|---:|",
    ]

    def row(scope: str, method: str, s: Scores) -> str:
        return (
            f"| {scope} | {s.n_series} ({s.n_skipped}) | {method} | {_fmt(s.mase)} | "
            f"{_fmt(s.wape)} | {_fmt(s.wql)} | {_fmt(s.coverage)} |"
        )

    for scope in scopes:
        lines += [row(scope, method, holdout[method][scope]) for method in methods]
    if rolling:
        lines += [row(rolling_label, method, s) for method, s in rolling.items()]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"
