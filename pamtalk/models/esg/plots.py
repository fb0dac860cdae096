"""PNG plots of an ESG training run: the model's scores against the methodology's.

Figures are built without pyplot (no global state, no GUI backend): Agg renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pamtalk.models.contract import ESG_SCORES


def plot_scatter(path: Path, cases: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """One row per named case of (model scores [N, 4, 3], methodology scores [N, 4]): the
    model's p50 with its p10..p90 band against the methodology, one panel per score."""
    fig = Figure(figsize=(16, 4 * len(cases)), layout="tight")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(cases), len(ESG_SCORES), squeeze=False)
    for row, (name, (pred, truth)) in enumerate(cases.items()):
        for col, score in enumerate(ESG_SCORES):
            ax = axes[row][col]
            p10, p50, p90 = pred[:, col, 0], pred[:, col, 1], pred[:, col, 2]
            ax.errorbar(
                truth[:, col],
                p50,
                yerr=[p50 - p10, p90 - p50],
                fmt="none",
                ecolor="tab:blue",
                alpha=0.05,
            )
            ax.scatter(truth[:, col], p50, s=3, color="tab:blue")
            ax.plot([0, 100], [0, 100], color="black", linewidth=0.8)
            ax.set(
                xlim=(0, 100),
                ylim=(0, 100),
                title=f"{score} ({name})",
                xlabel="methodology (complete profile)",
                ylabel="model p50 (p10..p90)",
            )
    fig.savefig(path, dpi=80)
    return path
