from __future__ import annotations

import pytest
import torch

from pamtalk.models.contract import DEMAND_QUANTILES, ESG_QUANTILES
from pamtalk.training.losses import pinball_loss


def test_pinball_loss_in_units_of_scale() -> None:
    target = torch.tensor([[50.0, 60.0, 70.0, 58.5]])  # [1, 4]
    exact = target.unsqueeze(-1).expand(1, 4, 3)  # [1, 4, 3]
    assert pinball_loss(exact, target, ESG_QUANTILES, scale=100.0).item() == 0
    # p50 10 points high on everything: loss 0.5 * 0.1 at p50 only; p10/p90 exact.
    off = exact.clone()
    off[..., 1] += 10
    assert pinball_loss(off, target, ESG_QUANTILES, scale=100.0).item() == pytest.approx(
        0.5 * 0.1 / 3
    )


def test_pinball_loss_is_asymmetric_and_broadcasts() -> None:
    target = torch.tensor([[10.0, 10.0]])  # [B=1, 2]
    low = torch.full((2, 1, 2, 3), 8.0)  # [K=2 members, B, 2, 3], 2 under the target
    # under-forecast by 2 costs tau * 2 at each level: mean of 0.2, 1.0, 1.8
    assert pinball_loss(low, target, DEMAND_QUANTILES).item() == pytest.approx(1.0)
    high = torch.full((2, 1, 2, 3), 12.0)  # over by 2 costs (1 - tau) * 2
    assert pinball_loss(high, target, DEMAND_QUANTILES).item() == pytest.approx(1.0)
    mixed = torch.tensor([8.0, 10.0, 12.0]).expand(2, 1, 2, 3)  # p10 low, p90 high: 0.2/3 each
    assert pinball_loss(mixed, target, DEMAND_QUANTILES).item() == pytest.approx(2 * 0.2 / 3)
