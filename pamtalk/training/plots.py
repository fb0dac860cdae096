"""The learning curve of a training run, as a PNG: both models draw theirs with it.

    plot_learning_curve(out_dir / "learning_curve.png", {"hold-out model": fitted.history})

Figures are built without pyplot (no global state, no GUI backend): Agg renders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_learning_curve(
    path: Path,
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    ylabel: str = "pinball loss",
) -> Path:
    """Train and validation loss per epoch (FitResult.history), one pair of lines per named
    run, on a log scale."""
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for (name, history), color in zip(
        curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        epochs = [int(h["epoch"]) + 1 for h in history]
        ax.plot(epochs, [h["train"] for h in history], color=color, ls="--", label=f"{name} train")
        ax.plot(epochs, [h["val"] for h in history], color=color, label=f"{name} validation")
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="log")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path
