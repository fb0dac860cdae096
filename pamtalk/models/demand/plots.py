"""PNG plots of a demand training run: forecasts against actuals at the hold-out (the
learning curve is ``training.plots``'s).

Figures are built without pyplot (no global state, no GUI backend): Agg renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pamtalk.models.demand.evaluate import Origin, Predictor
from pamtalk.models.demand.features import WINDOW, Panel


def plot_forecasts(
    path: Path,
    dates: pd.DatetimeIndex,
    history: np.ndarray,
    actual: np.ndarray,
    quantiles: np.ndarray,
    titles: Sequence[str],
) -> Path:
    """One panel per series: history and actual demand, p50 and the p10-p90 band.

    ``dates`` [56 + 28]; history [K, 56], actual [K, 28], quantiles [K, 28, 3]."""
    k = len(titles)
    cols = 2 if k > 1 else 1
    rows = (k + cols - 1) // cols
    fig = Figure(figsize=(6.5 * cols, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    past, future = dates[: history.shape[1]], dates[history.shape[1] :]
    for i, title in enumerate(titles):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(past, history[i], color="0.55", lw=1, label="history")
        ax.plot(future, actual[i], color="black", lw=1.2, label="actual")
        ax.fill_between(
            future,
            quantiles[i, :, 0],
            quantiles[i, :, 2],
            color="tab:blue",
            alpha=0.25,
            lw=0,
            label="p10-p90",
        )
        ax.plot(future, quantiles[i, :, 1], color="tab:blue", lw=1.2, label="p50")
        ax.axvline(future[0], color="0.3", lw=0.6, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kg / day", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.savefig(path, dpi=110)
    return path


def plot_holdout(path: Path, panel: Panel, holdout: Origin, predict: Predictor, count: int) -> Path:
    """plot_forecasts of ``count`` series at the hold-out origin: the biggest series of each
    crop first, so that every crop shows, then the biggest others."""
    volume = holdout.actual.sum(axis=1)
    order = np.argsort(-volume, kind="stable")
    chosen: list[int] = []
    for crop in sorted(set(panel.crops)):
        best = next((int(i) for i in order if panel.crops[i] == crop), None)
        if best is not None:
            chosen.append(best)
    chosen += [int(i) for i in order if int(i) not in chosen]
    rows = np.array(chosen[:count])
    dates = pd.date_range(end=panel.dates[-1], periods=WINDOW, freq="D")
    return plot_forecasts(
        path,
        dates,
        holdout.history[rows, :, 0],
        holdout.actual[rows],
        predict(holdout.history[rows], holdout.calendar[rows]),
        [panel.series[i] for i in rows],
    )
