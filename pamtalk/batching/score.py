"""One chunk's work: read its inputs in one query, build features for all of it at once,
score them through the predictor service at the pinned version in large batches, and write
the results with the chunk's completion in one transaction."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.batching import jobs, writers
from pamtalk.db.models import BatchJob, DemandDaily, Farm, FarmStatus
from pamtalk.db.types import utcnow
from pamtalk.models.contract import DEMAND, DEMAND_LOOKBACK, ESG, ESG_SCORES
from pamtalk.models.demand.features import daily_history, window_inputs
from pamtalk.models.esg import features as esg_features
from pamtalk.models.esg import methodology
from pamtalk.serving.service import PredictorService


async def run_chunk(
    session: AsyncSession, service: PredictorService, job_id: int, index: int
) -> int:
    """Score chunk ``index`` of job ``job_id``; returns the rows written."""
    chunk = await jobs.start_chunk(session, job_id, index)
    job = await jobs.get(session, job_id)
    assert job.run_date is not None
    name = DEMAND.registered_name if chunk.kind == "demand" else ESG.registered_name
    version = job.params["versions"][name]
    await service.pin(name, version)
    if chunk.kind == "demand":
        rows = await _demand(session, service, job, chunk.items, version)
        written = await writers.upsert_forecasts(session, rows)
    else:
        rows = await _esg(session, service, job, chunk.items, version)
        written = await writers.upsert_assessments(session, rows)
    await jobs.finish_chunk(session, job_id, index, written)
    await session.commit()
    return written


async def _demand(
    session: AsyncSession,
    service: PredictorService,
    job: BatchJob,
    series: list[str],
    version: str,
) -> list[dict[str, Any]]:
    assert job.run_date is not None
    as_of = job.run_date - timedelta(days=1)  # the last complete day
    first = as_of - timedelta(days=DEMAND_LOOKBACK - 1)
    pairs = [tuple(s.split(":", 1)) for s in series]
    found = await session.execute(
        select(
            DemandDaily.crop,
            DemandDaily.region,
            DemandDaily.day,
            DemandDaily.quantity_g,
            DemandDaily.value_krw,
        ).where(
            tuple_(DemandDaily.crop, DemandDaily.region).in_(pairs),
            DemandDaily.day.between(first, as_of),
        )
    )
    days: dict[str, list[tuple[date, int, int]]] = {s: [] for s in series}
    for crop, region, day, grams, value in found:
        days[f"{crop}:{region}"].append((day, grams, value))
    history = np.stack([daily_history(days[s], as_of) for s in series])
    _, calendar = window_inputs(history[0], as_of)  # one calendar serves every series
    result = await service.infer(
        DEMAND.registered_name,
        [history, np.repeat(calendar, len(series), axis=0)],
        version=version,
    )
    quantiles = np.maximum(result.outputs[0], 0.0)  # [S, 28, 3]; demand is never negative
    now = utcnow()
    return [
        {
            "run_date": job.run_date,
            "crop": crop,
            "region": region,
            "target_date": as_of + timedelta(days=h + 1),
            "p10_kg": float(q[0]),
            "p50_kg": float(q[1]),
            "p90_kg": float(q[2]),
            "model_name": DEMAND.registered_name,
            "model_version": version,
            "batch_job_id": job.id,
            "created_at": now,
        }
        for (crop, region), days in zip(pairs, quantiles, strict=True)
        for h, q in enumerate(days)
    ]


async def _esg(
    session: AsyncSession,
    service: PredictorService,
    job: BatchJob,
    farm_ids: list[int],
    version: str,
) -> list[dict[str, Any]]:
    farms = list(
        await session.scalars(
            select(Farm)
            .where(Farm.id.in_(farm_ids), Farm.status != FarmStatus.deleted)
            # A fixed order: two runs of one chunk (a redelivery) upsert keys in the same
            # order, so they queue on each other instead of deadlocking.
            .order_by(Farm.id)
        )
    )
    if not farms:
        return []
    records = [
        {
            "crops": f.crops,
            "area_m2": f.area_m2,
            "organic": f.organic,
            "certifications": f.certifications,
            "practices": f.practices,
        }
        for f in farms
    ]
    practices, mask = esg_features.encode_many(records)
    result = await service.infer(ESG.registered_name, [practices, mask], version=version)
    scores = np.clip(result.outputs[0], 0.0, 100.0)  # [F, 4 pillars, 3 quantiles]
    now = utcnow()
    rows = []
    for farm, record, farm_scores in zip(farms, records, scores, strict=True):
        p50 = {pillar: float(q[1]) for pillar, q in zip(ESG_SCORES, farm_scores, strict=True)}
        audit = methodology.assess(record)
        rows.append(
            {
                "farm_id": farm.id,
                "run_date": job.run_date,
                **p50,
                "grade": methodology.grade(p50["overall"]),
                "breakdown": {
                    "model": {
                        pillar: [round(float(v), 2) for v in q]
                        for pillar, q in zip(ESG_SCORES, farm_scores, strict=True)
                    },
                    "methodology_overall": audit.overall,
                },
                "model_name": ESG.registered_name,
                "model_version": version,
                "batch_job_id": job.id,
                "created_at": now,
            }
        )
    return rows
