"""The ESG network: (practices, mask) -> p10/p50/p90 of the E, S, G and overall scores.

    net = EsgNet(hidden=256, layers=3)
    scores = net(practices, mask)   # [N, F], [N, F] -> [N, 4, 3], 0..100, p10 <= p50 <= p90

An MLP over the masked values and the mask itself (so "reported 0" and "missing" differ).
ReLU because, on complete inputs, the methodology is piecewise linear in the features. The
heads are shaped so the contract's promises hold by construction, not by training:
- E, S, G medians are 100 * sigmoid(.), inside 0..100;
- the overall median is the methodology's weighted sum of the three (0.40 E + 0.35 S +
  0.25 G), so the scores the model returns are consistent with each other;
- p10 = p50 - p50 * sigmoid(.) and p90 = p50 + (100 - p50) * sigmoid(.): ordered and in range.
In ONNX: Gemm, Relu, Sigmoid, arithmetic, Concat, Slice, Unsqueeze, ReduceSum (opset 17, dynamic
batch axis).
"""

from __future__ import annotations

import torch
from torch import nn

from pamtalk.models import contract
from pamtalk.models.esg.methodology import WEIGHTS

SCORES = contract.ESG_SCORES  # environmental, social, governance, overall
# A new network's bands start narrow (sigmoid(-3) = 5 % of the room to 0 or 100).
BAND_BIAS = -3.0


class EsgNet(nn.Module):
    weights: torch.Tensor  # [3] the methodology's weights of E, S, G in the overall score

    def __init__(
        self,
        features: int = contract.ESG_FEATURES,
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = 2 * features  # values and mask side by side
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            width = hidden
        self.trunk = nn.Sequential(*blocks)
        self.median = nn.Linear(width, 3)  # E, S, G
        self.band = nn.Linear(width, 2 * len(SCORES))  # lower and upper, per score
        nn.init.constant_(self.band.bias, BAND_BIAS)
        weights = torch.tensor([WEIGHTS[s] for s in SCORES[:3]], dtype=torch.float32)
        self.register_buffer("weights", weights)

    def forward(self, practices: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([practices * mask, mask], dim=-1)  # [N, 2F]
        h = self.trunk(x)  # [N, H]
        esg = 100.0 * torch.sigmoid(self.median(h))  # [N, 3]
        overall = (esg * self.weights).sum(dim=-1, keepdim=True)  # [N, 1]
        p50 = torch.cat([esg, overall], dim=-1)  # [N, 4]
        lower, upper = torch.sigmoid(self.band(h)).chunk(2, dim=-1)  # [N, 4] each
        p10 = p50 - p50 * lower
        p90 = p50 + (100.0 - p50) * upper
        return torch.stack([p10, p50, p90], dim=-1)  # [N, 4, 3]
