"""Demand forecasts and ESG scores online, over the predictor service: inputs read, model
run, answers formatted (answers.py, as batch scoring does), cached ``prediction_ttl`` seconds
under the answering model version and the inputs, so a new champion misses naturally and
concurrent identical misses run one inference (``read_through``). Each answer says whether
it came from the cache (``"cached": true``); the flag is added to the cached bytes, never
stored in them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.cache import Cache, read_through
from pamtalk.db.models import EsgAssessment, Farm, FarmStatus
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import NotFound
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.models.esg import features as esg_features
from pamtalk.serving import answers, inputs
from pamtalk.serving.service import PredictorService

PREDICTIONS_NS = "predictions"


def _flagged(body: bytes, cached: bool) -> bytes:
    """The serialised JSON object ``body`` with ``"cached"`` added as its last key."""
    return body[:-1] + (b',"cached":true}' if cached else b',"cached":false}')


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part)
    return h.hexdigest()


async def forecast_demand(
    service: PredictorService,
    cache: Cache,
    ttl: int,
    db: AsyncSession,
    *,
    crop: str,
    region: str,
    as_of: date,
    horizon: int,
    history: np.ndarray | None,
    key: str | None,
) -> bytes:
    """p10/p50/p90 in kg for the ``horizon`` days after ``as_of``, from ``history`` (56 x
    [kg, KRW/kg]) or, when None, from the platform's daily aggregate."""
    async with service.lease(DEMAND.registered_name, key) as lease:
        source = _digest(history.tobytes()) if history is not None else "platform"
        cache_key = f"demand:{lease.version}:{crop}:{region}:{as_of}:{horizon}:{source}"

        async def produce() -> dict[str, Any]:
            if history is None:
                past = await inputs.demand_histories(db, [(crop, region)], as_of)
                await db.commit()  # release the connection while the model works
            else:
                past = history[None]
            result = await lease.infer(inputs.demand_inputs(past, as_of))
            quantiles = answers.demand_quantiles(result.outputs[0], horizon)[0]
            return {
                "model": result.model,
                "version": result.version,
                "crop": crop,
                "region": region,
                "as_of": as_of.isoformat(),
                "unit": "kg",
                **answers.history_summary(
                    past[0], "request" if history is not None else "platform"
                ),
                "forecast": answers.demand_forecast(quantiles, as_of),
            }

        return _flagged(*await read_through(cache, PREDICTIONS_NS, cache_key, ttl, produce))


async def score_esg(
    service: PredictorService,
    cache: Cache,
    ttl: int,
    *,
    profile: dict[str, Any],
    key: str | None,
) -> dict[str, Any]:
    """The model's p10/p50/p90 per pillar (the complete-profile estimate) and its grade,
    beside the methodology's audit score of what was reported."""
    practices, mask = esg_features.encode(profile)
    async with service.lease(ESG.registered_name, key) as lease:
        cache_key = f"esg:{lease.version}:{_digest(practices.tobytes(), mask.tobytes())}"

        async def produce() -> dict[str, Any]:
            result = await lease.infer([practices[None], mask[None]])
            (answer,) = answers.esg_answers(result.outputs[0], mask[None])
            return {
                "model": result.model,
                "version": result.version,
                "scores": answer.scores,
                "reported_share": answer.reported_share,
                "grade": answer.grade,
            }

        body, hit = await read_through(cache, PREDICTIONS_NS, cache_key, ttl, produce)
    model: dict[str, Any] = orjson.loads(body)
    return model | {"methodology": answers.audit(profile), "cached": hit}


async def score_farm(
    service: PredictorService,
    cache: Cache,
    ttl: int,
    db: AsyncSession,
    record: AsyncSession,
    *,
    farm_id: int,
    key: str | None,
    privileged: Callable[[int], bool],
) -> dict[str, Any]:
    """Score a stored farm. For a caller ``privileged`` for the farm's owner id (the owner,
    admins, analysts) the result is recorded as an assessment; anyone else gets the score
    unrecorded (``"stored": false``) and without the social pillar's breakdown, whose
    values are the farm's labour practices. The farm is read in ``db`` (a read session), the
    assessment written in ``record`` (a write session), which is left unused otherwise."""
    farm = await db.get(Farm, farm_id)
    if farm is None or farm.status == FarmStatus.deleted:
        raise NotFound(f"farm {farm_id} not found")
    profile, owner_id = farm.profile(), farm.owner_id
    await db.commit()  # release the connection while the model works
    result = await score_esg(service, cache, ttl, profile=profile, key=key)
    if not privileged(owner_id):
        social = result["methodology"]["breakdown"]["social"]
        result["methodology"]["breakdown"]["social"] = {
            "score": social["score"],
            "withheld": "the components show the farm's labour practices: its owner, "
            "admins and analysts see them",
        }
        return result | {"farm_id": farm_id, "assessment_id": None, "stored": False}
    answer = answers.EsgAnswer(result["scores"], result["grade"], result["reported_share"])
    assessment = EsgAssessment(
        farm_id=farm_id,
        run_date=utcnow().astimezone(KST).date(),
        **answers.assessment(answer, result["methodology"]),
        model_name=result["model"],
        model_version=result["version"],
    )
    record.add(assessment)
    await record.commit()
    return result | {"farm_id": farm_id, "assessment_id": assessment.id, "stored": True}
