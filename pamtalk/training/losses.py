"""The quantile (pinball) loss both models train with.

    loss = pinball_loss(pred, target, DEMAND_QUANTILES)             # pred [..., Q], target [...]
    loss = pinball_loss(scores, targets, ESG_QUANTILES, scale=100.0)  # in units of 100 points

Each model normalises in its own code; ``scale`` divides the error, for a fixed unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pinball_loss(
    pred: torch.Tensor, target: torch.Tensor, levels: Sequence[float], scale: float = 1.0
) -> torch.Tensor:
    """Mean pinball loss of the quantile forecasts ``pred`` [..., Q] at ``levels`` [Q] of
    ``target`` [...] (broadcast against pred's leading axes)."""
    q = torch.tensor(levels, dtype=pred.dtype, device=pred.device)  # [Q]
    error = (target.unsqueeze(-1) - pred) / scale  # [..., Q]
    return torch.maximum(q * error, (q - 1.0) * error).mean()
