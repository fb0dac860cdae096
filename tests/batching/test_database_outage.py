"""A database restarted under the nightly job (found by the chaos scenario
database_restart_mid_chunk, tests/chaos/batch_faults.py): a chunk that meets it waits it out
and completes, spending none of its retries, and ``pamtalk batch score --wait`` keeps
following the job. Before, a 12 s restart used up every queued chunk's three quick retries,
their failures could not be recorded, and the job stayed open with 53 of 79 chunks lost.

The fault is real: a private PostgreSQL cluster (tests/chaos/postgres.py) stopped with
``pg_ctl stop -m fast`` and started again; the chunk runs through the worker's own task."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import text

from pamtalk import queues
from pamtalk.batching import tasks
from pamtalk.batching.context import BatchContext
from pamtalk.cli.batch import wait_for_end
from pamtalk.db.manage import seed_database, upgrade_database
from pamtalk.db.models import BatchJob, JobStatus
from pamtalk.db.seed import SeedSize
from pamtalk.models.contract import DEMAND_HORIZON
from pamtalk.settings import Settings
from tests import services
from tests.chaos.postgres import Postgres, available
from tests.conftest import ModelStore

pytestmark = pytest.mark.services

RUN_DATE = date(2026, 11, 24)
OUTAGE_S = 3.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    if not available() or (os.geteuid() == 0 and not shutil.which("runuser")):
        reason = "a private PostgreSQL needs initdb and pg_ctl (and runuser as root)"
        pytest.fail(reason) if services.REQUIRE else pytest.skip(reason)
    cluster = Postgres()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def settings(
    postgres: Postgres, model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    found = Settings(
        env="test",
        database_url=postgres.url,
        mlflow_tracking_uri=model_store.copy(tmp_path_factory.mktemp("outage") / "store"),
        model_watch_interval=0,
        batch_database_wait_s=60,
    )
    asyncio.run(upgrade_database(found))
    asyncio.run(seed_database(found, SeedSize(farms=4, buyers=4, transactions=200, days=30)))
    return found


def _plan(settings: Settings, crop_region: str) -> int:
    async def plan() -> int:
        ctx = BatchContext(settings)
        try:
            return int((await ctx.plan_single("demand", crop_region, RUN_DATE)).id)
        finally:
            await ctx.close()

    return asyncio.run(plan())


def _restart_later(postgres: Postgres) -> threading.Thread:
    """Stop the database now; start it again OUTAGE_S later, in the background."""
    postgres.stop()

    def start() -> None:
        time.sleep(OUTAGE_S)
        postgres.start()

    thread = threading.Thread(target=start)
    thread.start()
    return thread


async def _job(settings: Settings, job_id: int) -> tuple[BatchJob, int, int]:
    ctx = BatchContext(settings)
    try:
        async with ctx.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT count(*) FROM demand_forecasts WHERE batch_job_id = :j"),
                    {"j": job_id},
                )
            ).scalar_one()
            attempts = (
                await conn.execute(
                    text("SELECT attempts FROM batch_chunks WHERE job_id = :j"), {"j": job_id}
                )
            ).scalar_one()
        return await ctx.status(job_id), rows, attempts
    finally:
        await ctx.close()


def test_a_chunk_waits_out_a_database_restart_and_completes(
    postgres: Postgres, settings: Settings
) -> None:
    job_id = _plan(settings, "cabbage:seoul")
    celery = queues.create_celery(settings)  # no broker: the task runs here, as on a worker
    tasks.register(celery, settings)
    restarting = _restart_later(postgres)
    try:
        outcome = celery.tasks["pamtalk.score_chunk"].apply(args=[job_id, 0])
    finally:
        restarting.join()
        celery.close()
    assert outcome.successful(), outcome.traceback
    assert outcome.result == DEMAND_HORIZON
    job, rows, attempts = asyncio.run(_job(settings, job_id))
    assert job.status == JobStatus.completed
    assert (job.chunks_done, job.rows_written, rows) == (1, DEMAND_HORIZON, DEMAND_HORIZON)
    assert attempts == 1  # the outage cost no attempt: the chunk never started before it


def test_following_a_job_waits_out_a_database_restart(
    postgres: Postgres, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _plan(settings, "onion:busan")
    seen: list[int] = []

    async def follow() -> BatchJob:
        ctx = BatchContext(settings)
        try:
            following = asyncio.create_task(
                wait_for_end(ctx, job_id, lambda job: seen.append(job.chunks_done), every=0.1)
            )
            restarting = await asyncio.to_thread(_restart_later, postgres)
            await asyncio.to_thread(restarting.join)
            async with ctx.engine.begin() as conn:  # the job ends after the outage
                await conn.execute(
                    text(
                        "UPDATE batch_jobs SET status = 'completed', chunks_done = 1 WHERE id = :j"
                    ),
                    {"j": job_id},
                )
            return await asyncio.wait_for(following, 30)
        finally:
            await ctx.close()

    job = asyncio.run(follow())
    assert job.status == JobStatus.completed
    assert seen[0] == 0 and seen[-1] == 1
    said = capsys.readouterr().err
    assert said.count("database unreachable") == 1
    assert said.count("database back after") == 1


def test_a_failure_that_cannot_be_recorded_goes_back_to_the_queue(
    postgres: Postgres, settings: Settings
) -> None:
    """Out of retries and out of patience while the database is still down: the chunk's
    failure cannot be written, so its message is rejected back to the queue (with late
    acknowledgement, acknowledged it would be gone and the job open for good)."""
    job_id = _plan(settings, "garlic:daegu")
    impatient = settings.model_copy(update={"batch_chunk_retries": 0, "batch_database_wait_s": 0.5})
    celery = queues.create_celery(impatient)
    tasks.register(celery, impatient)
    restarting = _restart_later(postgres)
    try:
        outcome = celery.tasks["pamtalk.score_chunk"].apply(args=[job_id, 0])
    finally:
        restarting.join()
        celery.close()
    assert outcome.state == "REJECTED", outcome.traceback
    job, rows, attempts = asyncio.run(_job(settings, job_id))
    assert job.status == JobStatus.pending and job.error is None  # open, to be run again
    assert (rows, attempts) == (0, 0)
