"""Planning and running jobs: the nightly job over every series and active farm, and
single-series / single-farm jobs started from the API. Chunks run on Celery workers when a
broker is configured (celery_app.py), in this process otherwise: the same code either way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.batching import jobs
from pamtalk.batching.score import run_chunk
from pamtalk.db.models import BatchJob
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.errors import ServiceUnavailable
from pamtalk.models.contract import CONTRACTS
from pamtalk.registry import promote, store
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings

log = logging.getLogger(__name__)


class BatchContext:
    """What a process that runs chunks holds: the database, and a predictor service that
    loads only the versions jobs pin, with large batches and a patient deadline."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        """``engine``: a process's own (the API's), shared rather than a second pool."""
        self.settings = settings
        self._owns_engine = engine is None
        self.engine = engine or create_engine(settings)
        self.sessions = create_session_factory(self.engine)
        self.service = PredictorService(
            settings.model_copy(
                update={
                    "serving_max_batch_size": settings.batch_max_batch_size,
                    "serving_max_queue_rows": 16 * settings.batch_max_batch_size,
                    "serving_timeout_s": 600.0,
                    "model_watch_interval": 0,
                }
            )
        )

    async def close(self) -> None:
        await self.service.close()
        if self._owns_engine:
            await self.engine.dispose()


def champions(settings: Settings) -> dict[str, str]:
    """The champion of every model, pinned for a job's whole run."""
    client = store.connect(settings)
    versions = {}
    for name in CONTRACTS:
        champion = promote.rollout(client, name).champion
        if champion is None:
            raise ServiceUnavailable(f"{name} has no champion: train and promote one first")
        versions[name] = champion
    return versions


async def plan_nightly(
    ctx: BatchContext, run_date: date, created_by: int | None = None
) -> BatchJob:
    versions = await asyncio.to_thread(champions, ctx.settings)
    async with ctx.sessions() as session:
        farms = await jobs.active_farm_ids(session)
        chunks = jobs.split(
            "demand", jobs.every_series(), ctx.settings.batch_demand_chunk
        ) + jobs.split("esg", farms, ctx.settings.batch_esg_chunk)
        return await jobs.create(session, jobs.NIGHTLY, run_date, versions, chunks, created_by)


async def plan_single(
    ctx: BatchContext,
    kind: Literal["demand", "esg"],
    item: str | int,
    run_date: date,
    created_by: int | None = None,
) -> BatchJob:
    versions = await asyncio.to_thread(champions, ctx.settings)
    async with ctx.sessions() as session:
        chunk = jobs.ChunkPlan(kind, [item])
        return await jobs.create(session, kind, run_date, versions, [chunk], created_by)


async def run_one(ctx: BatchContext, job_id: int, index: int) -> int:
    async with ctx.sessions() as session:
        return await run_chunk(session, ctx.service, job_id, index)


async def fail(ctx: BatchContext, job_id: int, index: int, reason: str) -> None:
    async with ctx.sessions() as session:
        await jobs.fail_chunk(session, job_id, index, reason)


async def run_inline(
    ctx: BatchContext, job_id: int, on_chunk: Callable[[BatchJob], None] | None = None
) -> BatchJob:
    """Every unfinished chunk, in order, retried as a worker would; stops at a chunk that
    fails for good (the job is then failed with its reason)."""
    for index, _ in await chunk_kinds(ctx, job_id, unfinished=True):
        for attempt in range(ctx.settings.batch_chunk_retries + 1):
            try:
                await run_one(ctx, job_id, index)
                break
            except Exception as exc:
                log.warning("job %s chunk %s attempt %s failed: %s", job_id, index, attempt, exc)
                if attempt == ctx.settings.batch_chunk_retries:
                    await fail(ctx, job_id, index, f"{type(exc).__name__}: {exc}")
                    return await status(ctx, job_id)
        if on_chunk is not None:
            on_chunk(await status(ctx, job_id))
    return await status(ctx, job_id)


async def status(ctx: BatchContext, job_id: int) -> BatchJob:
    async with ctx.sessions() as session:
        return await jobs.get(session, job_id)


async def chunk_kinds(
    ctx: BatchContext, job_id: int, unfinished: bool = False
) -> list[tuple[int, str]]:
    async with ctx.sessions() as session:
        return await jobs.chunks(session, job_id, unfinished)


async def reopen(ctx: BatchContext, job_id: int) -> list[tuple[int, str]]:
    async with ctx.sessions() as session:
        return await jobs.reopen(session, job_id)


async def stalled(ctx: BatchContext, idle: timedelta) -> list[int]:
    async with ctx.sessions() as session:
        return await jobs.stalled(session, idle)
