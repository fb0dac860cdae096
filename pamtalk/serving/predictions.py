"""Demand forecasts and ESG scores over the predictor service: features in, answers out,
cached ``prediction_ttl`` seconds under the answering model version and the inputs, so a new
champion misses naturally and concurrent identical misses run one inference (``cached``)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np
import orjson

from pamtalk.cache import Cache, cached
from pamtalk.models.contract import DEMAND, DEMAND_QUANTILES, ESG, ESG_SCORES
from pamtalk.models.demand.features import LOOKBACK, window_inputs
from pamtalk.models.esg import features as esg_features
from pamtalk.models.esg import methodology
from pamtalk.serving.service import PredictorService

PREDICTIONS_NS = "predictions"
QUANTILE_NAMES = tuple(f"p{round(q * 100)}" for q in DEMAND_QUANTILES)


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part)
    return h.hexdigest()


async def forecast_demand(
    service: PredictorService,
    cache: Cache,
    ttl: int,
    *,
    crop: str,
    region: str,
    as_of: date,
    horizon: int,
    history: np.ndarray | None,
    load_history: Callable[[], Awaitable[np.ndarray]],
    key: str | None,
) -> bytes:
    """p10/p50/p90 in kg for the ``horizon`` days after ``as_of``, from ``history`` (56 x
    [kg, KRW/kg]) or, when None, from ``load_history()`` (the platform's aggregate)."""
    async with service.lease(DEMAND.registered_name, key) as lease:
        source = _digest(history.tobytes()) if history is not None else "platform"
        cache_key = f"demand:{lease.version}:{crop}:{region}:{as_of}:{horizon}:{source}"

        async def produce() -> dict[str, Any]:
            past = history if history is not None else await load_history()
            result = await lease.infer(window_inputs(past, as_of))
            # A quantile below zero is the network's extrapolation; demand cannot be negative.
            quantiles = np.maximum(result.outputs[0][0, :horizon], 0.0)
            return {
                "model": result.model,
                "version": result.version,
                "crop": crop,
                "region": region,
                "as_of": as_of.isoformat(),
                "unit": "kg",
                "history_days": LOOKBACK,
                "history_source": "request" if history is not None else "platform",
                "forecast": [
                    {
                        "date": (as_of + timedelta(days=h + 1)).isoformat(),
                        **{n: round(float(v), 3) for n, v in zip(QUANTILE_NAMES, row, strict=True)},
                    }
                    for h, row in enumerate(quantiles)
                ],
            }

        return await cached(cache, PREDICTIONS_NS, cache_key, ttl, produce)


async def score_esg(
    service: PredictorService,
    cache: Cache,
    ttl: int,
    *,
    farm: Mapping[str, Any],
    key: str | None,
) -> dict[str, Any]:
    """The model's p10/p50/p90 per pillar (the complete-profile estimate) beside the
    methodology's audit score of what was reported (missing inputs earn no points)."""
    practices, mask = esg_features.encode(farm)
    async with service.lease(ESG.registered_name, key) as lease:
        cache_key = f"esg:{lease.version}:{_digest(practices.tobytes(), mask.tobytes())}"

        async def produce() -> dict[str, Any]:
            result = await lease.infer([practices[None], mask[None]])
            scores = np.clip(result.outputs[0][0], 0.0, 100.0)  # [4 pillars, 3 quantiles]
            return {
                "model": result.model,
                "version": result.version,
                "scores": {
                    pillar: {
                        n: round(float(v), 2) for n, v in zip(QUANTILE_NAMES, row, strict=True)
                    }
                    for pillar, row in zip(ESG_SCORES, scores, strict=True)
                },
                "reported_share": round(float(mask.mean()), 3),
            }

        model: dict[str, Any] = orjson.loads(
            await cached(cache, PREDICTIONS_NS, cache_key, ttl, produce)
        )
    audit = methodology.assess(farm)
    model["grade"] = methodology.grade(model["scores"]["overall"]["p50"])
    model["methodology"] = {
        "environmental": audit.environmental,
        "social": audit.social,
        "governance": audit.governance,
        "overall": audit.overall,
        "grade": audit.grade,
        "breakdown": audit.breakdown,
    }
    return model
