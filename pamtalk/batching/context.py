"""What a process that plans or runs batch jobs holds, and the one way to start a job.

Jobs are the nightly job over every series and active farm, and single-series / single-farm
jobs started from the API. ``launch`` runs a job's chunks on the Celery workers when a broker
is configured (celery_app.py), in this process otherwise: the same chunk code either way.

    ctx = BatchContext(settings)
    job = await ctx.plan_nightly(run_date)
    task = await ctx.launch(job.id)     # None: sent to the workers; else the in-process run
    await ctx.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pamtalk.batching import jobs, score
from pamtalk.db.models import BatchJob
from pamtalk.db.outage import database_unavailable
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.errors import ServiceUnavailable
from pamtalk.models.contract import CONTRACTS
from pamtalk.registry import promote, store
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

OnChunk = Callable[[BatchJob], None]


def serving_settings(settings: Settings) -> Settings:
    """A batch process serves only the versions its jobs pin (it follows no alias), in large
    batches with a patient deadline."""
    return settings.model_copy(
        update={
            "serving_max_batch_size": settings.batch_max_batch_size,
            "serving_max_queue_rows": settings.batch_max_queue_rows,
            "serving_timeout_s": settings.batch_timeout_s,
            "model_watch_interval": 0,
        }
    )


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


class BatchContext:
    """The database, a predictor service for the pinned versions, the in-process jobs and
    (with a broker, made on first use) the Celery client that sends chunks to workers."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine | None = None, celery: Any = None
    ) -> None:
        """``engine``: the process's own (the API's), shared rather than a second pool;
        ``celery``: the worker's own app, to send with."""
        self.settings = settings
        self._owns_engine = engine is None
        self.engine = engine or create_engine(settings)
        self.sessions = create_session_factory(self.engine)
        self.service = PredictorService(serving_settings(settings))
        self._celery = celery
        self._running: set[asyncio.Task[BatchJob]] = set()
        # In-process jobs that run at once; the others wait here, pending.
        self._slots = asyncio.Semaphore(settings.jobs_max_running)

    async def close(self, grace: float = 30.0) -> None:
        """Let in-process jobs finish for up to ``grace`` seconds (each chunk commits whole,
        so a cut one is redone by the next run), then release what they held."""
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._running, return_exceptions=True), grace
                )
        await self.service.close()
        if self._owns_engine:
            await self.engine.dispose()

    # -- planning --------------------------------------------------------------------------

    async def plan_nightly(self, run_date: date, created_by: int | None = None) -> BatchJob:
        versions = await asyncio.to_thread(champions, self.settings)
        async with self.sessions.write() as session:
            await self._admit(session, created_by, jobs.NIGHTLY, run_date)
            farms = await jobs.active_farm_ids(session)
            chunks = jobs.split(
                "demand", jobs.every_series(), self.settings.batch_demand_chunk
            ) + jobs.split("esg", farms, self.settings.batch_esg_chunk)
            return await jobs.create(session, jobs.NIGHTLY, run_date, versions, chunks, created_by)

    async def plan_single(
        self,
        kind: Literal["demand", "esg"],
        item: str | int,
        run_date: date,
        created_by: int | None = None,
    ) -> BatchJob:
        versions = await asyncio.to_thread(champions, self.settings)
        async with self.sessions.write() as session:
            await self._admit(session, created_by, kind, item)
            chunk = jobs.ChunkPlan(kind, [item])
            return await jobs.create(session, kind, run_date, versions, [chunk], created_by)

    async def _admit(
        self, session: AsyncSession, created_by: int | None, kind: str, target: Any
    ) -> None:
        """A user's job is held to the per-user limits (jobs.admit); one the operators
        start (the CLI, beat: no user) is not."""
        if created_by is not None:
            per_day = self.settings.jobs_per_user_per_day
            await jobs.admit(session, created_by, kind, target, per_day)

    # -- running ---------------------------------------------------------------------------

    async def launch(
        self, job_id: int, on_chunk: OnChunk | None = None
    ) -> asyncio.Task[BatchJob] | None:
        """Start the job's unfinished chunks: sent to the workers when a broker is
        configured (returns None), else run in this process (returns that run's task;
        ``on_chunk`` sees the job after each chunk)."""
        if self.settings.celery_broker_url is None:
            # A context of its own: the job outlives the request that started it, and must
            # not inherit its deadline.
            task = asyncio.create_task(
                self._run_in_turn(job_id, on_chunk), context=contextvars.Context()
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return task
        from pamtalk import queues
        from pamtalk.batching import celery_app  # Celery only where a broker is used

        if self._celery is None:
            self._celery = queues.create_celery(self.settings)
        chunks = await self.chunks(job_id, unfinished=True)
        await asyncio.to_thread(celery_app.dispatch, self._celery, job_id, chunks)
        return None

    async def _run_in_turn(self, job_id: int, on_chunk: OnChunk | None) -> BatchJob:
        async with self._slots:
            return await self.run_inline(job_id, on_chunk)

    async def run_chunk(self, job_id: int, index: int) -> int:
        """Score one chunk; returns the rows written. Versions pinned for jobs that have
        ended since are let go first, and this job's once it has ended."""
        await self._release_ended()
        async with self.sessions.write() as session:
            written = await score.run_chunk(session, self.service, job_id, index)
        await self._release_ended()
        return written

    async def fail(self, job_id: int, index: int, reason: str) -> None:
        async with self.sessions.write() as session:
            await jobs.fail_chunk(session, job_id, index, reason)
        await self._release_ended()

    async def run_inline(self, job_id: int, on_chunk: OnChunk | None = None) -> BatchJob:
        """Every unfinished chunk, in order, retried as a worker would; stops at a chunk that
        fails for good (the job is then failed with its reason)."""
        for index, _ in await self.chunks(job_id, unfinished=True):
            for attempt in range(self.settings.batch_chunk_retries + 1):
                try:
                    await self.run_chunk(job_id, index)
                    break
                except Exception as exc:
                    log.warning(
                        "job %s chunk %s attempt %s failed: %s", job_id, index, attempt, exc
                    )
                    if attempt == self.settings.batch_chunk_retries:
                        await self.fail(job_id, index, f"{type(exc).__name__}: {exc}")
                        return await self.status(job_id)
            if on_chunk is not None:
                on_chunk(await self.status(job_id))
        await self.service.release(score.holder(job_id))  # e.g. a job with no chunks left
        return await self.status(job_id)

    async def wait_for_database(self, within: float, every: float = 1.0) -> bool:
        """Whether the database answers within ``within`` seconds (asked every ``every``).
        Any error other than it being unreachable is raised."""
        deadline = time.monotonic() + within
        while True:
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
            if time.monotonic() + every > deadline:
                return False
            await asyncio.sleep(every)

    async def _release_ended(self) -> None:
        holders = {score.job_of(holder): holder for holder in self.service.holders()}
        if not holders:
            return
        async with self.sessions.read() as session:
            ended = await jobs.ended(session, list(holders))
        for job_id in ended:
            await self.service.release(holders[job_id])

    # -- reading and repair ----------------------------------------------------------------

    async def status(self, job_id: int) -> BatchJob:
        async with self.sessions.read() as session:
            return await jobs.get(session, job_id)

    async def chunks(self, job_id: int, unfinished: bool = False) -> list[tuple[int, str]]:
        async with self.sessions.read() as session:
            return await jobs.chunks(session, job_id, unfinished)

    async def reopen(self, job_id: int) -> list[tuple[int, str]]:
        async with self.sessions.write() as session:
            return await jobs.reopen(session, job_id)

    async def stalled(self, idle: timedelta) -> list[int]:
        async with self.sessions.write() as session:
            return await jobs.stalled(session, idle)
