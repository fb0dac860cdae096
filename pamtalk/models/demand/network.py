"""The global demand network: one model for every series, raw numbers in, kg out.

    history [N, 56, 2], calendar [N, 84, C] -> quantiles [N, 28, 3] (p10 <= p50 <= p90, >= 0)

Each window is scaled by its own mean demand (and mean known price) inside the graph, so the
one model serves series from 5 kg to 200 t a day and callers never scale. An encoder MLP
reads the scaled 56-day history into a context vector; a decoder shared across the 28
forecast days combines it with that day's calendar, a learned horizon embedding and
same-weekday references (last week, 4- and 8-week means), which also feed the output
through a linear skip. Quantiles are built as p10 + softplus increments, hence monotone.
The p10..p90 band is then widened (or narrowed) about p50 by ``band_factor``, a buffer that
training calibrates on held-out windows (split conformal), so the exported graph, and every
server of it, gives the calibrated band.
Only static shapes and elementwise/matmul ops: exports to ONNX opset 17 with a dynamic batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pamtalk.models.contract import (
    DEMAND_CALENDAR_FEATURES,
    DEMAND_HORIZON,
    DEMAND_LOOKBACK,
    DEMAND_QUANTILES,
)
from pamtalk.models.demand.features import HOLIDAY, MAJOR

LOOKBACK, HORIZON, QUANTILES = DEMAND_LOOKBACK, DEMAND_HORIZON, len(DEMAND_QUANTILES)
WEEK = 7
REFERENCES = 3  # last week, 4-week and 8-week same-weekday means
EPS_KG = 1e-3  # keeps an all-zero history finite: it then forecasts ~0
EPS_KRW = 1.0
LEVEL_CENTER, LEVEL_SPREAD = 7.0, 3.0  # log1p(kg) and log1p(KRW) are mostly 2..12


class _Member(nn.Module):
    """One forecaster: scaled inputs -> unclipped scaled quantiles [N, 28, 3]."""

    def __init__(
        self, hidden: int, context: int, decoder: int, dropout: float, calendar_features: int
    ) -> None:
        super().__init__()
        # demand, price and holiday flags per history day, plus the two log levels.
        self.encoder = nn.Sequential(
            nn.Linear(3 * LOOKBACK + 2, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, context),
            nn.ReLU(),
        )
        self.from_context = nn.Linear(context, decoder)
        self.from_calendar = nn.Linear(calendar_features, decoder, bias=False)
        self.from_references = nn.Linear(REFERENCES, decoder, bias=False)
        self.horizon = nn.Parameter(torch.zeros(HORIZON, decoder))
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.Linear(decoder, decoder),
            nn.ReLU(),
            nn.Linear(decoder, QUANTILES),
        )
        self.skip = nn.Linear(REFERENCES, QUANTILES)

    def forward(
        self, encoder_in: torch.Tensor, refs: torch.Tensor, future: torch.Tensor
    ) -> torch.Tensor:
        context = self.encoder(encoder_in)  # [N, context]
        hidden = (
            self.from_context(context).unsqueeze(1)  # [N, 1, D]
            + self.from_calendar(future)  # [N, 28, D]
            + self.from_references(refs)  # [N, 28, D]
            + self.horizon  # [28, D]
        )
        raw = self.decoder(hidden) + self.skip(refs)  # [N, 28, 3]
        # Monotone by construction: p10, p10 + softplus, p50 + softplus.
        lower = raw[:, :, 0:1]
        steps = F.softplus(raw[:, :, 1:])  # [N, 28, 2]
        return torch.cat([lower, lower + torch.cumsum(steps, dim=2)], dim=2)


class DemandNet(nn.Module):
    """``members`` independently initialised forecasters on shared scaled inputs; the
    forecast is their mean (an average of monotone quantiles stays monotone)."""

    def __init__(
        self,
        hidden: int = 128,
        context: int = 64,
        decoder: int = 64,
        dropout: float = 0.1,
        members: int = 1,
        calendar_features: int = DEMAND_CALENDAR_FEATURES,
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(
            _Member(hidden, context, decoder, dropout, calendar_features) for _ in range(members)
        )
        # Each half-width of the band (p50 - p10, p90 - p50) times this; 1 until calibrated
        # (training/demand/train.py). A buffer: saved with the weights, exported as a constant.
        self.band_factor: torch.Tensor
        self.register_buffer("band_factor", torch.ones(()))

    def member_quantiles(
        self, history: torch.Tensor, calendar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's unclipped quantiles in units of the window's scale [K, N, 28, 3],
        and that scale [N, 1, 1] in kg. Training fits these, so no gradient dies at the
        zero clip."""
        demand, price = history[:, :, 0], history[:, :, 1]  # [N, 56] each
        scale = demand.mean(dim=1, keepdim=True) + EPS_KG  # [N, 1]
        known = (price > 0).to(price.dtype)
        price_scale = (price.sum(dim=1, keepdim=True) + EPS_KRW) / (
            known.sum(dim=1, keepdim=True) + 1.0
        )  # [N, 1] mean known price
        d = demand / scale  # [N, 56]
        p = price / price_scale  # [N, 56]
        closed = calendar[:, :LOOKBACK, MAJOR] + calendar[:, :LOOKBACK, HOLIDAY]  # [N, 56]
        levels = (torch.log1p(torch.cat([scale, price_scale], dim=1)) - LEVEL_CENTER) / (
            LEVEL_SPREAD
        )  # [N, 2]
        encoder_in = torch.cat([d, p, closed, levels], dim=1)  # [N, 170]

        # Same-weekday references for each forecast day: horizon day h shares its weekday
        # with history day 49 + (h % 7), so a week-long profile tiles 4 times.
        last_week = d[:, LOOKBACK - WEEK :]  # [N, 7]
        mean4 = d[:, LOOKBACK - 4 * WEEK :].reshape(-1, 4, WEEK).mean(dim=1)  # [N, 7]
        mean8 = d.reshape(-1, LOOKBACK // WEEK, WEEK).mean(dim=1)  # [N, 7]
        refs = torch.stack([last_week, mean4, mean8], dim=2)  # [N, 7, 3]
        refs = refs.repeat(1, HORIZON // WEEK, 1)  # [N, 28, 3]
        future = calendar[:, LOOKBACK:, :]  # [N, 28, C]
        outs = torch.stack([m(encoder_in, refs, future) for m in self.members])  # [K, N, 28, 3]
        return outs, scale.unsqueeze(2)

    def scaled(
        self, history: torch.Tensor, calendar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' mean [N, 28, 3] in units of the scale [N, 1, 1]."""
        outs, scale = self.member_quantiles(history, calendar)
        return outs.mean(dim=0), scale

    def forward(self, history: torch.Tensor, calendar: torch.Tensor) -> torch.Tensor:
        """Quantiles in kg [N, 28, 3]: non-negative and monotone (relu keeps the order)."""
        quantiles, scale = self.scaled(history, calendar)
        return torch.relu(widen(quantiles, self.band_factor) * scale)


def widen(quantiles: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[..., 3] quantiles with both half-widths of the p10..p90 band times ``factor`` (> 0
    keeps them monotone); p50 unchanged."""
    p10, p50, p90 = quantiles[..., 0:1], quantiles[..., 1:2], quantiles[..., 2:3]
    return torch.cat([p50 - (p50 - p10) * factor, p50, p50 + (p90 - p50) * factor], dim=-1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
