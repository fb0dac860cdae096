"""Resuming a job: its unfinished chunks run again, finished ones keep their rows, and the
stalled-job sweep finds jobs that stopped moving. In-process (no broker), on SQLite."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from pamtalk.batching import jobs
from pamtalk.batching.context import BatchContext
from pamtalk.cli import app as cli
from pamtalk.db.manage import seed_database, upgrade_database
from pamtalk.db.models import BatchJob, DemandForecast, JobStatus
from pamtalk.db.seed import SeedSize
from pamtalk.settings import Settings
from tests.conftest import ModelStore

RUN_DATE = date(2026, 11, 20)


async def test_a_failed_job_resumes_to_exact_counts(
    model_store: ModelStore, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db",
        mlflow_tracking_uri=model_store.copy(tmp_path / "m"),
        batch_demand_chunk=128,
        batch_chunk_retries=0,
    )
    await upgrade_database(settings)
    await seed_database(settings, SeedSize(farms=10, transactions=300))
    ctx = BatchContext(settings)
    try:
        job = await ctx.plan_nightly(RUN_DATE)
        async with ctx.sessions.write() as session:  # pin a version that does not exist
            await session.execute(
                update(BatchJob)
                .where(BatchJob.id == job.id)
                .values(params={"versions": {"pamtalk-demand": "1", "pamtalk-esg": "999"}})
            )
            await session.commit()
        failed = await ctx.run_inline(job.id)
        assert failed.status == JobStatus.failed and "999" in (failed.error or "")
        assert failed.chunks_done == failed.chunks_total - 1  # the demand chunks are done

        async with ctx.sessions.write() as session:
            assert await jobs.stalled(session, timedelta(0)) == []  # failed: not stalled
            await session.execute(
                update(BatchJob)
                .where(BatchJob.id == job.id)
                .values(params={"versions": {"pamtalk-demand": "1", "pamtalk-esg": "1"}})
            )
            await session.commit()
    finally:
        await ctx.close()

    env = {
        "PAMTALK_DATABASE_URL": settings.database_url,
        "PAMTALK_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["batch", "resume", str(job.id)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "1 chunks to run again" in result.output and "completed" in result.output

    ctx = BatchContext(settings)
    try:
        done = await ctx.status(job.id)
        assert done.status == JobStatus.completed and done.chunks_done == done.chunks_total
        async with ctx.sessions.write() as session:
            forecasts = await session.scalar(select(func.count()).select_from(DemandForecast))
        assert forecasts == 510 * 28
        assert done.rows_written == forecasts + 10
    finally:
        await ctx.close()


async def test_stalled_jobs_are_found(model_store: ModelStore, tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db",
        mlflow_tracking_uri=model_store.copy(tmp_path / "m"),
    )
    await upgrade_database(settings)
    ctx = BatchContext(settings)
    try:
        job = await ctx.plan_single("demand", "cabbage:jeju", RUN_DATE)
        assert await ctx.stalled(timedelta(minutes=10)) == []
        assert await ctx.stalled(timedelta(0)) == [job.id]
        assert await ctx.reopen(job.id) == [(0, "demand")]
    finally:
        await ctx.close()
