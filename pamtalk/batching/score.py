"""One chunk's work: read its inputs in one query, build features for all of it at once,
score them through the predictor service at the pinned version in large batches, and write
the results with the chunk's completion in one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk import tracing
from pamtalk.batching import jobs, writers
from pamtalk.db.models import BatchJob, Farm, FarmStatus
from pamtalk.db.types import utcnow
from pamtalk.models.contract import DEMAND, DEMAND_HORIZON, ESG, by_kind
from pamtalk.models.esg import features as esg_features
from pamtalk.serving import answers, inputs
from pamtalk.serving.service import PredictorService


def holder(job_id: int) -> str:
    """How a job is named among those pinning a model version."""
    return f"job-{job_id}"


def job_of(holder: str) -> int:
    return int(holder.removeprefix("job-"))


async def run_chunk(
    session: AsyncSession, service: PredictorService, job_id: int, index: int
) -> int:
    """Score chunk ``index`` of job ``job_id``; returns the rows written."""
    with tracing.span("batch.chunk", {"batch.job_id": job_id, "batch.chunk": index}) as span:
        chunk = await jobs.start_chunk(session, job_id, index)
        job = await jobs.get(session, job_id)
        assert job.run_date is not None
        name = by_kind(chunk.kind).registered_name
        version = job.params["versions"][name]
        span.set_attributes(
            {
                "batch.kind": chunk.kind,
                "batch.items": len(chunk.items),
                "model.name": name,
                "model.version": version,
            }
        )
        await service.pin(name, version, holder(job_id))
        if chunk.kind == "demand":
            rows = await _demand(session, service, job, chunk.items, version)
            written = await writers.upsert_forecasts(session, rows)
        else:
            rows = await _esg(session, service, job, chunk.items, version)
            written = await writers.upsert_assessments(session, rows)
        await jobs.finish_chunk(session, job_id, index, written)
        await session.commit()
        span.set_attribute("batch.rows_written", written)
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
    pairs = [(crop, region) for crop, region in (s.split(":", 1) for s in series)]
    histories = await inputs.demand_histories(session, pairs, as_of)
    result = await service.infer(
        DEMAND.registered_name, inputs.demand_inputs(histories, as_of), version=version
    )
    quantiles = answers.demand_quantiles(result.outputs[0], DEMAND_HORIZON)  # [S, 28, 3]
    days = answers.forecast_dates(as_of, DEMAND_HORIZON)
    now = utcnow()
    return [
        {
            "run_date": job.run_date,
            "crop": crop,
            "region": region,
            "target_date": day,
            "p10_kg": p10,
            "p50_kg": p50,
            "p90_kg": p90,
            "model_name": DEMAND.registered_name,
            "model_version": version,
            "batch_job_id": job.id,
            "created_at": now,
        }
        for (crop, region), rows in zip(pairs, quantiles.tolist(), strict=True)
        for day, (p10, p50, p90) in zip(days, rows, strict=True)
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
    profiles = [farm.profile() for farm in farms]
    practices, mask = esg_features.encode_many(profiles)
    result = await service.infer(ESG.registered_name, [practices, mask], version=version)
    now = utcnow()
    return [
        {
            "farm_id": farm.id,
            "run_date": job.run_date,
            **answers.assessment(answer, answers.audit(profile)),
            "model_name": ESG.registered_name,
            "model_version": version,
            "batch_job_id": job.id,
            "created_at": now,
        }
        for farm, profile, answer in zip(
            farms, profiles, answers.esg_answers(result.outputs[0], mask), strict=True
        )
    ]
