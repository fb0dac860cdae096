"""Train and evaluate the demand forecasting model (contract DEMAND).

What it does, top to bottom:
1. The frame becomes a panel: [series, day] arrays plus calendar features.
2. Held-out time: the last 28 days of every series are never trained on. The model is fitted
   on 84-day windows (56 history + 28 target) whose targets end before a validation span
   (the `val_days` before the hold-out), which drives early stopping and then calibrates the
   p10..p90 band (split conformal: the network's ``band_factor``).
3. It is scored on the hold-out against a 7-day seasonal naive and a 28-day moving average.
4. Rolling origins: a second model, fitted the same way on data before the last 182 days
   only, forecasts from origins every 14 days across those 182 days (the last origin is the
   hold-out); the means over origins are the rolling metrics. No origin's target is trained on.
5. Peers (models/demand/peers.py: AutoETS, AutoTheta, a global LightGBM), when the
   ``forecast`` extra is installed: fitted in the same run and scored on the same origins,
   series and days as the model, through the same evaluate.py functions.
6. Plots, the evaluation table and metrics.json land in ``out_dir``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pamtalk import extras
from pamtalk.models.contract import DEMAND_HORIZON, DEMAND_LOOKBACK, DEMAND_QUANTILES
from pamtalk.models.demand import baselines, peers
from pamtalk.models.demand.data import fingerprint, validate
from pamtalk.models.demand.evaluate import (
    OVERALL,
    Origin,
    Predictor,
    Scores,
    at_origin,
    evaluate_at,
    evaluate_forecast,
    format_table,
    mean_scores,
    seasonal_scale,
)
from pamtalk.models.demand.features import Panel, to_panel, windows
from pamtalk.models.demand.network import DemandNet, parameter_count
from pamtalk.models.demand.plots import plot_holdout
from pamtalk.training.loop import (
    Batch,
    FitConfig,
    FitResult,
    batches,
    fit,
    flat_params,
    seed_everything,
    torch_threads,
)
from pamtalk.training.losses import pinball_loss
from pamtalk.training.plots import plot_learning_curve
from pamtalk.training.quantize import calibration_rows
from pamtalk.training.result import TrainResult, torch_predictor

LOOKBACK, HORIZON = DEMAND_LOOKBACK, DEMAND_HORIZON
PEERS_FEATURE = "the demand peers (AutoETS, AutoTheta, LightGBM)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemandConfig:
    # network
    hidden: int = 128
    context: int = 64
    decoder: int = 64
    dropout: float = 0.1
    members: int = 3  # an ensemble in one graph: averaging 3 halves the seed-to-seed spread
    # optimisation (training.loop.fit); 12 epochs: the cosine schedule anneals within the
    # ~5 epochs validation favours
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=12, patience=4))
    # training windows
    val_days: int = 56  # validation span right before the held-out days; >= 28
    window_stride: int = 1  # days between consecutive training windows of a series
    # evaluation
    rolling: bool = True
    rolling_days: int = 182
    rolling_step: int = 14
    plot_series: int = 6
    # widen/narrow the p10..p90 band about p50 so that it covers 80 % of the validation
    # span's targets (the network's band_factor, exported with the graph)
    conformal: bool = True
    # peers (models/demand/peers.py) in the same run: None when the 'forecast' extra is
    # installed, True required (MissingExtra without it), False never
    peers: bool | None = None

    @classmethod
    def tiny(cls) -> DemandConfig:
        """Seconds on small synthetic data: for tests, not for quality."""
        return cls(
            hidden=16,
            context=8,
            decoder=8,
            members=2,
            fit=replace(cls().fit, epochs=2, batch_size=128, progress=False),
            val_days=28,
            window_stride=4,
            rolling_days=56,
            rolling_step=28,
            plot_series=2,
            peers=False,
        )


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Split:
    """Windows (series index, last history day) for training and validation."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]


def split(panel: Panel, cutoff: int, config: DemandConfig) -> Split:
    """Targets of validation windows lie in [cutoff - val_days, cutoff), those of training
    windows before that; nothing at or after ``cutoff`` is used."""
    val_start = cutoff - config.val_days
    train_ends = np.arange(LOOKBACK - 1, val_start - HORIZON, config.window_stride)
    val_ends = np.arange(val_start - 1, cutoff - HORIZON)
    if len(train_ends) == 0 or len(val_ends) == 0:
        raise ValueError(
            f"{panel.days} days leave no training windows before day {cutoff}: need at least "
            f"{LOOKBACK + HORIZON + config.val_days} days before it"
        )

    def grid(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, e = np.meshgrid(np.arange(len(panel.series)), ends, indexing="ij")
        s, e = s.ravel(), e.ravel()
        # A window without any demand in its history has nothing to scale by: skip it.
        cumulative = np.concatenate(
            [np.zeros((len(panel.series), 1)), np.cumsum(panel.demand, axis=1)], axis=1
        )
        seen = cumulative[s, e + 1] - cumulative[s, np.maximum(e + 1 - LOOKBACK, 0)]
        return s[seen > 0], e[seen > 0]

    return Split(grid(train_ends), grid(val_ends))


# ----------------------------------------------------------------------------- training


def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Pinball loss in kg divided by the series' in-sample seasonal-naive MAE: the training
    counterpart of MASE (every series weighs alike, whatever its volume)."""
    history, calendar, target, norm = batch  # [B, 56, 2], [B, 84, C], [B, 28], [B]
    assert isinstance(model, DemandNet)
    outs, scale = model.member_quantiles(history, calendar)  # [K, B, 28, 3], [B, 1, 1]
    if not model.training:
        # Validation scores the averaged forecast, as served; training fits every member
        # on its own (an ensemble, not one wide model).
        outs = outs.mean(dim=0, keepdim=True)
    kg = outs * scale  # [K, B, 28, 3], unclipped so that no gradient dies at zero
    return pinball_loss(kg / norm[None, :, None, None], target / norm[:, None], DEMAND_QUANTILES)


def train_model(
    panel: Panel, cutoff: int, config: DemandConfig, desc: str
) -> tuple[DemandNet, FitResult, dict[str, int]]:
    """Fit a fresh network on windows whose targets end before ``cutoff``."""
    parts = split(panel, cutoff, config)
    train_h, train_c, train_t = windows(panel, *parts.train)
    val_h, val_c, val_t = windows(panel, *parts.val)
    # Per-series loss normaliser, from the training part only; >= 1 kg/day.
    norm = np.maximum(seasonal_scale(panel.demand[:, : cutoff - config.val_days]), 1.0)
    train_n, val_n = norm[parts.train[0]], norm[parts.val[0]]
    seed_everything(config.fit.seed)
    model = DemandNet(config.hidden, config.context, config.decoder, config.dropout, config.members)
    result = fit(
        model,
        lambda epoch: batches(
            train_h,
            train_c,
            train_t,
            train_n,
            batch_size=config.fit.batch_size,
            shuffle_seed=config.fit.seed * 1_000 + epoch,
        ),
        batches(val_h, val_c, val_t, val_n, batch_size=4_096),
        loss_fn,
        config.fit,
        desc=desc,
    )
    model.load_state_dict(result.best_state)
    model.eval()
    if config.conformal:
        model.band_factor.fill_(band_factor(model, val_h, val_c, val_t))
    sizes = {"train_windows": len(parts.train[0]), "val_windows": len(parts.val[0])}
    return model, result, sizes


def band_factor(
    model: DemandNet, history: np.ndarray, calendar: np.ndarray, target: np.ndarray
) -> float:
    """The factor on the band's half-widths that makes p10..p90 cover 80 % of these
    (calibration) targets: split-conformal quantile regression with a multiplicative score.
    A target is covered under factor f iff (p50 - y) / (p50 - p10) <= f and
    (y - p50) / (p90 - p50) <= f; f is the finite-sample 80 % quantile of that score over
    every (window, day). Relu's clip at 0 can only cover more."""
    with torch.no_grad():
        q, scale = model.scaled(torch.from_numpy(history), torch.from_numpy(calendar))
    q64, y = q.numpy().astype(np.float64), target.astype(np.float64) / scale.numpy()[:, :, 0]
    p10, p50, p90 = q64[:, :, 0], q64[:, :, 1], q64[:, :, 2]
    tiny = 1e-6  # in units of the window's scale: a band of no width
    score = np.maximum(
        (p50 - y) / np.maximum(p50 - p10, tiny), (y - p50) / np.maximum(p90 - p50, tiny)
    )
    score = score[np.isfinite(score)]
    nominal = DEMAND_QUANTILES[-1] - DEMAND_QUANTILES[0]
    level = min(1.0, math.ceil((score.size + 1) * nominal) / score.size)
    # at least a sliver of band, so the quantiles stay strictly ordered where they were
    return max(float(np.quantile(score, level, method="higher")), 1e-3)


BASELINES: dict[str, Predictor] = {
    "seasonal_naive": baselines.seasonal_naive,
    "moving_average": baselines.moving_average,
}


# ----------------------------------------------------------------------------- pipeline


def train_demand(frame: pd.DataFrame, config: DemandConfig, out_dir: Path) -> TrainResult:
    with torch_threads(config.fit.threads):
        return _train_demand(frame, config, Path(out_dir))


def _train_demand(frame: pd.DataFrame, config: DemandConfig, out_dir: Path) -> TrainResult:
    started = time.perf_counter()
    validate(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    panel = to_panel(frame)
    crops = panel.crops
    holdout_origin = panel.days - HORIZON  # first held-out day

    # 1-2. The model, fitted on everything before the hold-out.
    model, fitted, sizes = train_model(panel, holdout_origin, config, desc="demand")

    # 3. Hold-out scores: the model and the baselines on the same windows.
    holdout = at_origin(panel, holdout_origin)
    predictors: dict[str, Predictor] = {"model": torch_predictor(model), **BASELINES}
    by_method = {name: evaluate_at(holdout, p, crops) for name, p in predictors.items()}

    def evaluate(predict: Predictor) -> dict[str, float]:
        return _holdout_metrics(evaluate_at(holdout, predict, crops))

    metrics = _holdout_metrics(by_method["model"])
    for name in BASELINES:
        metrics.update(by_method[name][OVERALL].as_dict(prefix=f"{name}_"))
    metrics["mase_ratio"] = _ratio(metrics["mase"], metrics["seasonal_naive_mase"])

    # 4. Rolling origins, with a model that has seen nothing from the rolling span.
    rolling_scores, origins, rolling_fit, rolling_band = _rolling(panel, config)
    for name in ("model", *BASELINES):
        # Too little data (or rolling=False): the same keys, as NaN.
        s = rolling_scores.get(name, Scores(math.nan, math.nan, math.nan, math.nan, 0, 0))
        metrics.update(s.as_dict(prefix="rolling_" if name == "model" else f"rolling_{name}_"))
    metrics["rolling_mase_ratio"] = _ratio(
        metrics.get("rolling_mase", math.nan), metrics.get("rolling_seasonal_naive_mase", math.nan)
    )

    # 5. Peers, on the hold-out and the rolling origins: the same windows as the model.
    skipped = _peers_skipped(config)
    if config.peers is not False and skipped is None:
        peers_started = time.perf_counter()
        peer_holdout, peer_rolling = _peers(panel, holdout, origins, config)
        by_method.update(peer_holdout)
        rolling_scores.update(peer_rolling)
        metrics["peers_seconds"] = time.perf_counter() - peers_started
    elif skipped is not None:
        log.warning("%s", skipped)
    for name in peers.PEERS:
        nan = Scores(math.nan, math.nan, math.nan, math.nan, 0, 0)
        metrics.update(by_method.get(name, {OVERALL: nan})[OVERALL].as_dict(prefix=f"{name}_"))
        metrics.update(rolling_scores.get(name, nan).as_dict(prefix=f"rolling_{name}_"))
    metrics["band_factor"] = float(model.band_factor)
    metrics["rolling_band_factor"] = rolling_band
    metrics["best_epoch"] = float(fitted.best_epoch + 1)
    metrics["train_seconds"] = time.perf_counter() - started

    # 6. Report.
    day = panel.dates
    caption = (
        f"Hold-out: the last {HORIZON} days ({day[holdout_origin].date()} .. {day[-1].date()}) "
        f"of {len(panel.series)} series."
    )
    if origins:
        caption += (
            f" Rolling: {len(origins)} origins every {config.rolling_step} days from "
            f"{day[origins[0]].date()} to {day[origins[-1]].date()}, model fitted on data "
            f"before {day[origins[0]].date()}."
        )
    if skipped is not None:
        caption += f" {skipped}."
    table = (
        caption
        + "\n\n"
        + format_table(by_method, rolling_scores or None, rolling_label="rolling origins (mean)")
    )
    curves = {"hold-out model": fitted.history}
    if rolling_fit is not None:
        curves["rolling model"] = rolling_fit.history
    plots = {
        "learning_curve": plot_learning_curve(
            out_dir / "learning_curve.png", curves, "pinball loss / seasonal-naive MAE"
        ),
        "forecasts": plot_holdout(
            out_dir / "forecasts.png", panel, holdout, predictors["model"], config.plot_series
        ),
    }
    (out_dir / "evaluation.md").write_text(table + "\n", encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

    examples = _example_rows(holdout, 8)
    # int8 calibration: a sample of the windows the model was fitted on
    train_series, train_end = split(panel, holdout_origin, config).train
    pick = calibration_rows(len(train_series))
    calibration = windows(panel, train_series[pick], train_end[pick])[:2]
    params: dict[str, Any] = {
        **flat_params(config),
        "series": len(panel.series),
        "days": panel.days,
        "first_day": str(day[0].date()),
        "last_day": str(day[-1].date()),
        "holdout_start": str(day[holdout_origin].date()),
        "crops": ",".join(sorted(set(crops))),
        "parameters": parameter_count(model),
        "rolling_origins": len(origins),
        "mase_skipped_series": by_method["model"][OVERALL].n_skipped,
        **sizes,
    }
    return TrainResult(
        model=model,
        metrics=metrics,
        table=table,
        example_inputs=(holdout.history[examples], holdout.calendar[examples]),
        eval_inputs=(holdout.history, holdout.calendar),
        calibration_inputs=calibration,
        evaluate=evaluate,
        plots=plots,
        fingerprint=fingerprint(frame),
        params=params,
    )


def _holdout_metrics(scores: dict[str, Scores]) -> dict[str, float]:
    out = scores[OVERALL].as_dict()
    out.update({f"mase_{crop}": s.mase for crop, s in scores.items() if crop != OVERALL})
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def rolling_origins(panel: Panel, config: DemandConfig) -> list[int]:
    """The rolling origins (first forecast days), or none when rolling is off or the data
    leave too little before the rolling span to fit a model."""
    start = panel.days - config.rolling_days
    if not config.rolling or start - config.val_days - HORIZON < LOOKBACK:
        return []
    return list(range(start, panel.days - HORIZON + 1, config.rolling_step))


def _rolling(
    panel: Panel, config: DemandConfig
) -> tuple[dict[str, Scores], list[int], FitResult | None, float]:
    """Mean scores over the rolling origins, the origins, the rolling model's fit and its
    band_factor (nothing, and NaN, when there are none)."""
    origins = rolling_origins(panel, config)
    if not origins:
        return {}, [], None, math.nan
    model, fitted, _ = train_model(panel, origins[0], config, desc="demand rolling")
    predictors: dict[str, Predictor] = {"model": torch_predictor(model), **BASELINES}
    per_origin = [at_origin(panel, o) for o in origins]
    scores = {
        name: mean_scores([evaluate_at(o, p, panel.crops)[OVERALL] for o in per_origin])
        for name, p in predictors.items()
    }
    return scores, origins, fitted, float(model.band_factor)


def _peers_skipped(config: DemandConfig) -> str | None:
    """Why the peers cannot run although wanted (the extra is missing), or None; with
    ``peers=True`` that is MissingExtra instead."""
    if config.peers is False:
        return None  # not wanted: nothing to report
    try:
        extras.require("forecast", PEERS_FEATURE)
    except extras.MissingExtra as exc:
        if config.peers:
            raise
        return f"Peers skipped: {exc}"
    return None


def _peers(
    panel: Panel, holdout: Origin, origins: list[int], config: DemandConfig
) -> tuple[dict[str, dict[str, Scores]], dict[str, Scores]]:
    """Each peer's hold-out scores per crop and its mean over the rolling origins."""
    with extras.needs("forecast", PEERS_FEATURE):
        at_holdout, rolling = peers.forecasts(panel, holdout.origin, origins, config.fit.seed)
    per_origin = {o: at_origin(panel, o) for o in origins}
    holdout_scores = {
        name: evaluate_forecast(holdout, at_holdout.quantiles[name][holdout.origin], panel.crops)
        for name in peers.PEERS
    }
    rolling_scores = {
        name: mean_scores(
            [
                evaluate_forecast(per_origin[o], rolling.quantiles[name][o], panel.crops)[OVERALL]
                for o in origins
            ]
        )
        for name in peers.PEERS
        if origins
    }
    return holdout_scores, rolling_scores


def _example_rows(holdout: Origin, n: int) -> np.ndarray:
    """The n series with the most demand in their history window: realistic inputs."""
    volume = holdout.history[:, :, 0].sum(axis=1)
    return np.sort(np.argsort(-volume, kind="stable")[:n])
