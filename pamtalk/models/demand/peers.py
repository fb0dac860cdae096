"""Peer forecasters, fitted in the same run as the demand model and scored on its windows.

Each is fitted like the network: once before the hold-out, and once before the first
rolling origin, then forecasting from each rolling origin with the history up to it.

- AutoETS and AutoTheta (statsforecast, season 7), one per series, fitted on the 104 weeks
  before the fitting origin; from a later origin they keep their parameters and run their
  states over the days since (``forward``). p10/p90: their 80 % prediction intervals
  (level 80), p50: the point forecast.
- A global LightGBM (mlforecast) over all series. Features: lags 7, 14, 21 and 28,
  rolling means of the lag-7 series over 7 and 28 days and of the lag-28 series over 28 days,
  day of week / year and month, the crop, the calendar's holiday flags, and the price 28 days
  earlier (the last price known for every forecast day). The target is log1p(kg); one model
  per quantile (objective ``quantile``, alpha 0.1 / 0.5 / 0.9), and since quantiles commute
  with a monotone transform, expm1 of each is that quantile in kg. Crossed quantiles are
  sorted.

Every peer returns, per origin, quantiles [S, 28, 3] in kg in the panel's series order for
the origin's 28 days, read by their labels (``unique_id``, ``ds``: mlforecast's output, and
the series statsforecast fitted): a forecast that does not cover exactly those series and
days is an error, never realigned.
Needs the ``forecast`` extra (statsforecast, mlforecast, lightgbm), imported on use.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pamtalk.models.contract import DEMAND, DEMAND_HORIZON, DEMAND_QUANTILES
from pamtalk.models.demand.features import CALENDAR_COLUMNS, LOOKBACK, Panel

HORIZON = DEMAND_HORIZON
SEASON = 7
STATS_PEERS = ("autoets", "autotheta")
LIGHTGBM = "lightgbm"
PEERS = (*STATS_PEERS, LIGHTGBM)
if DEMAND.peers != PEERS:
    raise RuntimeError("peers.PEERS and contract.DEMAND.peers disagree")
# 80 % interval = [p10, p90]
LEVEL = round(100 * (DEMAND_QUANTILES[-1] - DEMAND_QUANTILES[0]))
HOLIDAY_COLUMNS = ("holiday", "major_holiday", "after_major", "pre_major")
PRICE_LAG = HORIZON
# The statistical peers fit on the last 104 weeks before their fitting origin: AutoTheta's
# fit time grows faster than linearly with length (39 Jeju series: 9 s on 2 years, 111 s on
# 4), and exponential smoothing forgets older days anyway.
STATS_HISTORY_DAYS = 728


@dataclass(frozen=True)
class LightGBMParams:
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.8


Window = tuple[str, pd.Timestamp]  # (series, forecast day)


def origin_windows(panel: Panel, origin: int) -> frozenset[Window]:
    """The (series, day) pairs a forecast from ``origin`` is scored on (evaluate.at_origin)."""
    days = panel.dates[origin : origin + HORIZON]
    return frozenset((s, d) for s in panel.series for d in days)


@dataclass(frozen=True)
class PeerForecasts:
    """Each peer's quantiles [S, 28, 3] (kg) per origin, and the (series, day) pairs the
    libraries labelled them with."""

    quantiles: dict[str, dict[int, np.ndarray]]  # peer -> origin -> [S, 28, 3]
    windows: dict[str, dict[int, frozenset[Window]]]  # peer -> origin -> labelled pairs


def long_frame(panel: Panel, end: int) -> pd.DataFrame:
    """The panel's first ``end`` days as the libraries' long frame (unique_id, ds, y) plus
    the LightGBM's exogenous columns (calendar flags, price 28 days earlier) and crop."""
    s, d = len(panel.series), end
    day_index = np.arange(d)
    lagged = np.zeros_like(panel.price[:, :d])
    lagged[:, PRICE_LAG:] = panel.price[:, : d - PRICE_LAG] if d > PRICE_LAG else 0.0
    calendar = panel.calendar[LOOKBACK : LOOKBACK + d]  # panel.calendar starts LOOKBACK early
    crop_codes = {c: i for i, c in enumerate(sorted(set(panel.crops)))}
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(panel.series, dtype=object), d),
            "ds": np.tile(panel.dates[:d].to_numpy(), s),
            "y": panel.demand[:, :d].ravel(),
            "crop": np.repeat([crop_codes[c] for c in panel.crops], d).astype(np.int64),
            "price_lag28": lagged.ravel(),
        }
    )
    for name in HOLIDAY_COLUMNS:
        frame[name] = np.tile(calendar[day_index, CALENDAR_COLUMNS.index(name)], s)
    return frame


def to_quantiles(
    forecast: pd.DataFrame, columns: Sequence[str], panel: Panel, origin: int
) -> tuple[np.ndarray, frozenset[Window]]:
    """[S, 28, 3] from a labelled forecast frame (``columns``: p10, p50, p90), non-negative
    and non-crossing; ValueError unless it covers exactly the origin's series and days."""
    labelled = frozenset(
        zip(forecast["unique_id"].astype(str), pd.to_datetime(forecast["ds"]), strict=True)
    )
    expected = origin_windows(panel, origin)
    if labelled != expected or len(forecast) != len(expected):
        raise ValueError(
            f"a peer forecast from day {origin} covers {len(labelled)} (series, day) pairs, "
            f"not the {len(expected)} of the evaluation windows"
        )
    indexed = forecast.set_index(["unique_id", "ds"])
    order = pd.MultiIndex.from_product(
        [list(panel.series), panel.dates[origin : origin + HORIZON]], names=["unique_id", "ds"]
    )
    values = indexed.loc[order, list(columns)].to_numpy(dtype=np.float64)
    quantiles = np.sort(np.clip(values, 0.0, None), axis=1)
    return quantiles.reshape(len(panel.series), HORIZON, len(columns)), labelled


def stats_forecasts(panel: Panel, fit_end: int, origins: Sequence[int]) -> PeerForecasts:
    """AutoETS and AutoTheta per series, fitted on the STATS_HISTORY_DAYS before
    ``fit_end``, then forecasting from each origin (>= fit_end) with their parameters fixed
    and their states run over the history up to it (the models' ``forward``)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

    if any(o < fit_end for o in origins):
        raise ValueError("every origin must be at or after the end of the fitting span")
    models = {
        "autoets": AutoETS(season_length=SEASON),
        "autotheta": AutoTheta(season_length=SEASON),
    }
    # A series a model cannot fit (all zeros, say) falls back to the seasonal naive.
    engine = StatsForecast(
        models=list(models.values()),
        freq="D",
        n_jobs=1,
        fallback_model=SeasonalNaive(season_length=SEASON),
    )
    start = max(0, fit_end - STATS_HISTORY_DAYS)
    with warnings.catch_warnings():
        # statsmodels' autocorrelation of an all-zero stretch divides by zero (NaN: no
        # seasonality found, which is the right answer)
        warnings.simplefilter("ignore", RuntimeWarning)
        history = long_frame(panel, fit_end)[["unique_id", "ds", "y"]]
        engine.fit(df=history[history["ds"] >= panel.dates[start]])
        out = PeerForecasts({p: {} for p in models}, {p: {} for p in models})
        row_of = {series: i for i, series in enumerate(panel.series)}
        for origin in origins:
            days = panel.dates[origin : origin + HORIZON]
            frames: dict[str, list[pd.DataFrame]] = {p: [] for p in models}
            for i, uid in enumerate(engine.uids):
                y = panel.demand[row_of[str(uid)], start:origin]
                for j, peer in enumerate(models):
                    res = engine.fitted_[i, j].forward(y=y, h=HORIZON, level=[LEVEL])
                    frames[peer].append(
                        pd.DataFrame(
                            {
                                "unique_id": str(uid),
                                "ds": days,
                                "lo": res[f"lo-{LEVEL}"],
                                "mean": res["mean"],
                                "hi": res[f"hi-{LEVEL}"],
                            }
                        )
                    )
            for peer in models:
                out.quantiles[peer][origin], out.windows[peer][origin] = to_quantiles(
                    pd.concat(frames[peer]), ("lo", "mean", "hi"), panel, origin
                )
    return out


def lightgbm_forecasts(
    panel: Panel, fit_end: int, origins: Sequence[int], seed: int, params: LightGBMParams
) -> PeerForecasts:
    """One global LightGBM per quantile, fitted on days before ``fit_end``, forecasting from
    each origin (>= fit_end) with the history up to it."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import GlobalSklearnTransformer
    from sklearn.preprocessing import FunctionTransformer

    if any(o < fit_end for o in origins):
        raise ValueError("every origin must be at or after the end of the fitting span")
    names = [f"q{round(100 * q)}" for q in DEMAND_QUANTILES]
    models: dict[str, Any] = {
        name: LGBMRegressor(
            objective="quantile",
            alpha=q,
            random_state=seed,
            n_jobs=1,
            verbosity=-1,
            deterministic=True,
            **vars(params),
        )
        for name, q in zip(names, DEMAND_QUANTILES, strict=True)
    }
    engine = MLForecast(
        models=models,
        freq="D",
        lags=[7, 14, 21, 28],
        lag_transforms={7: [RollingMean(7), RollingMean(28)], 28: [RollingMean(28)]},
        date_features=["dayofweek", "dayofyear", "month"],
        target_transforms=[
            GlobalSklearnTransformer(FunctionTransformer(func=np.log1p, inverse_func=np.expm1))
        ],
        num_threads=1,
    )
    engine.fit(long_frame(panel, fit_end), static_features=["crop"])
    everything = long_frame(panel, panel.days)
    exogenous = everything.drop(columns=["y", "crop"])
    out = PeerForecasts({LIGHTGBM: {}}, {LIGHTGBM: {}})
    for origin in origins:
        history = everything[everything["ds"] < panel.dates[origin]]
        future = exogenous[exogenous["ds"].isin(panel.dates[origin : origin + HORIZON])]
        forecast = engine.predict(h=HORIZON, new_df=history, X_df=future)
        out.quantiles[LIGHTGBM][origin], out.windows[LIGHTGBM][origin] = to_quantiles(
            forecast, names, panel, origin
        )
    return out


def forecasts(
    panel: Panel,
    holdout_origin: int,
    rolling_origins: Sequence[int],
    seed: int,
    params: LightGBMParams | None = None,
) -> tuple[PeerForecasts, PeerForecasts]:
    """(hold-out, rolling): every peer from the hold-out origin, and from each rolling
    origin. Like the network, each peer is fitted twice: on the days before the hold-out,
    and on those before the first rolling origin (then forecasting from every rolling
    origin with the history up to it)."""
    params = params or LightGBMParams()

    def fitted_at(fit_end: int, origins: Sequence[int]) -> PeerForecasts:
        if not origins:
            return PeerForecasts({p: {} for p in PEERS}, {p: {} for p in PEERS})
        stats = stats_forecasts(panel, fit_end, origins)
        boosted = lightgbm_forecasts(panel, fit_end, origins, seed, params)
        return PeerForecasts(
            {**stats.quantiles, **boosted.quantiles}, {**stats.windows, **boosted.windows}
        )

    rolling = list(rolling_origins)
    return fitted_at(holdout_origin, [holdout_origin]), fitted_at(min(rolling, default=0), rolling)
