"""Batch scoring on real Celery workers (`pamtalk worker` processes) over RabbitMQ and Redis,
against PostgreSQL: every row written exactly once however the chunks are delivered, the job's
progress exact, a worker killed mid-job costing nothing, and a chunk that fails for good
failing its job with the reason."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import pytest

from pamtalk import queues
from pamtalk.batching import context
from pamtalk.batching.context import BatchContext
from pamtalk.db.models import BatchJob, JobStatus
from pamtalk.db.session import create_session_factory
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.settings import Settings
from tests.batching.conftest import (
    DEMAND_ROWS,
    SERIES,
    Broker,
    Database,
    Workers,
    batch_settings,
    dispatch,
    plan_nightly,
    wait_for_job,
)

pytestmark = pytest.mark.services

NIGHTLY_DATE = date(2026, 11, 20)
KILL_DATE = date(2026, 11, 21)
FAIL_DATE = date(2026, 11, 22)
SINGLE_DATE = date(2026, 11, 23)


async def champions(registry_uri: str) -> dict[str, str]:
    settings = Settings(env="test", mlflow_tracking_uri=registry_uri)
    return await asyncio.to_thread(context.champions, settings)


async def nightly_on_workers(
    database: Database, broker: Broker, workers: Workers, run_date: date
) -> BatchJob:
    """What beat does at 02:00: send `pamtalk.nightly`; a worker plans the job and fans it
    out. Returns the job once it has ended."""
    before = await database.value("SELECT coalesce(max(id), 0) FROM batch_jobs")
    with broker.celery() as celery:
        celery.send_task("pamtalk.nightly", args=[run_date.isoformat()], queue=queues.PREDICTIONS)
    deadline = time.monotonic() + 60
    while (
        job_id := await database.value(
            "SELECT max(id) FROM batch_jobs WHERE id > :before AND run_date = :d",
            before=before,
            d=run_date,
        )
    ) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no nightly job was planned\n{workers.logs()}")
        await asyncio.sleep(0.2)
    return await wait_for_job(database, job_id, workers)


async def test_nightly_job_writes_every_row_once_and_rerunning_it_changes_nothing(
    database: Database, registry_uri: str, broker: Broker, workers: Workers
) -> None:
    workers.running()
    farms = await database.active_farms()
    assert farms > 0
    pinned = await champions(registry_uri)
    expected_chunks = -(-SERIES // 32) + 1  # 32 series a chunk, and one chunk of farms

    runs = []
    for _ in range(2):
        job = await nightly_on_workers(database, broker, workers, NIGHTLY_DATE)
        rows = await database.rows(NIGHTLY_DATE)
        runs.append((job, rows))

        assert job.status == JobStatus.completed, job.error
        assert job.error is None
        assert job.params["versions"] == pinned
        assert job.chunks_total == expected_chunks
        assert job.chunks_done == job.chunks_total
        chunks = await database.chunks(job.id)
        assert {c.status for c in chunks} == {JobStatus.completed}
        assert sum(c.rows_written for c in chunks) == job.rows_written

        # One row per key, every series and every active farm, at the pinned versions.
        assert rows.demand == rows.demand_keys == DEMAND_ROWS
        assert rows.series == SERIES
        assert rows.esg == rows.esg_keys == farms
        assert rows.demand_versions == {pinned[DEMAND.registered_name]}
        assert rows.esg_versions == {pinned[ESG.registered_name]}
        assert job.rows_written == rows.total == DEMAND_ROWS + farms
        # The rows are this run's: a rerun overwrites in place instead of adding.
        assert rows.job_ids == {job.id}

    (first, first_rows), (second, second_rows) = runs
    assert second.id != first.id
    assert (second_rows.demand, second_rows.esg) == (first_rows.demand, first_rows.esg)


async def test_a_worker_killed_mid_job_loses_no_chunk_and_doubles_no_row(
    database: Database, registry_uri: str, broker: Broker, workers: Workers
) -> None:
    farms = await database.active_farms()
    first = workers.running()
    # One series a chunk: hundreds of short chunks, so the kill lands mid-job.
    job_id, chunks = await plan_nightly(database, registry_uri, KILL_DATE, demand_chunk=1)
    assert len(chunks) == SERIES + 1
    await first.ready()
    dispatch(broker, job_id, chunks)

    deadline = time.monotonic() + 60
    while (await database.job(job_id)).chunks_done < 20:
        if time.monotonic() > deadline:
            pytest.fail(f"the first worker did not get going\n{workers.logs()}")
        await asyncio.sleep(0.02)
    first.kill()
    await database.quiet()
    at_kill = await database.job(job_id)
    assert at_kill.status == JobStatus.running
    assert 20 <= at_kill.chunks_done < at_kill.chunks_total, "the kill came too late"
    # Chunks started (their attempt counted) but not committed when the worker died.
    interrupted = {
        c.index
        for c in await database.chunks(job_id)
        if c.attempts > 0 and c.status != JobStatus.completed
    }

    second = workers.running()
    assert second is not first
    job, resent = await finish(database, broker, workers, job_id)
    assert job.status == JobStatus.completed, job.error
    assert job.chunks_done == job.chunks_total == len(chunks)
    after = {c.index: c for c in await database.chunks(job_id)}
    assert {c.status for c in after.values()} == {JobStatus.completed}
    assert all(after[i].attempts >= 2 for i in interrupted), "an interrupted chunk ran again"
    assert "pamtalk.score_chunk" in second.output()
    if broker.name == "rabbitmq":
        assert not resent  # RabbitMQ gives back whatever the dead connection held

    rows = await database.rows(KILL_DATE)
    assert rows.demand == rows.demand_keys == DEMAND_ROWS
    assert rows.esg == rows.esg_keys == farms
    assert job.rows_written == rows.total == DEMAND_ROWS + farms
    assert rows.job_ids == {job_id}


async def finish(
    database: Database, broker: Broker, workers: Workers, job_id: int
) -> tuple[BatchJob, set[int]]:
    """Wait for the job to end after a kill; returns it and the chunks sent again by hand.

    Only on Redis, and only when the broker holds nothing more (queued or unacknowledged)
    while the job still has open chunks: kombu pops a message (BRPOP) and records it as
    unacknowledged in a second step, so a worker killed in between takes that message with
    it (celery/kombu#305, celery/celery#7950). Such a chunk never started, and the job
    record shows it open; sending it again is the recovery, and must give exact results."""
    resent: set[int] = set()
    drained_at: float | None = None
    deadline = time.monotonic() + 90
    while True:
        job = await database.job(job_id)
        still = [c for c in await database.chunks(job_id) if c.status != JobStatus.completed]
        if job.status in (JobStatus.completed, JobStatus.failed) and not still:
            return job, resent
        if broker.name == "redis" and not resent and still and broker.drained():
            drained_at = drained_at or time.monotonic()
            if time.monotonic() - drained_at > 2:  # the worker has nothing left either
                # What the killed worker held at most (2 processes x prefetch 1), unstarted.
                assert len(still) <= 2, [(c.index, c.status, c.attempts) for c in still]
                assert all(c.attempts == 0 for c in still), still
                resent = {c.index for c in still}
                dispatch(broker, job_id, [(c.index, c.kind) for c in still])
        else:
            drained_at = None
        if time.monotonic() > deadline:
            pytest.fail(
                f"job {job_id} still {job.status}: {job.chunks_done}/{job.chunks_total}, "
                f"open {[(c.index, c.attempts) for c in still][:10]}\n{workers.logs()}"
            )
        await asyncio.sleep(0.2)


async def _pin(database: Database, job_id: int, name: str, version: str) -> None:
    """Make a planned job pin a version of ``name`` that the registry does not have."""
    async with create_session_factory(database.engine).write() as session:
        job = await session.get(BatchJob, job_id)
        assert job is not None
        versions = dict(job.params["versions"])
        versions[name] = version
        job.params = {**job.params, "versions": versions}
        await session.commit()


async def test_a_chunk_failing_after_its_retries_fails_the_job_with_the_reason(
    database: Database, registry_uri: str, broker: Broker, workers: Workers
) -> None:
    """Two jobs pinned to a version the registry does not have: a single-series one, and a
    nightly one whose farm chunk fails while its demand chunks succeed."""
    workers.running()  # PAMTALK_BATCH_CHUNK_RETRIES=1: two attempts a chunk
    ctx = BatchContext(batch_settings(database, registry_uri))
    try:
        single = await ctx.plan_single("demand", "tangerine:jeju", SINGLE_DATE)
    finally:
        await ctx.close()
    await _pin(database, single.id, DEMAND.registered_name, "999")
    job_id, chunks = await plan_nightly(database, registry_uri, FAIL_DATE, demand_chunk=32)
    await _pin(database, job_id, ESG.registered_name, "999")
    dispatch(broker, single.id, [(0, "demand")])
    dispatch(broker, job_id, chunks)

    job = await wait_for_job(database, single.id, workers)
    assert job.status == JobStatus.failed
    [chunk] = await database.chunks(single.id)
    assert chunk.status == JobStatus.failed
    assert chunk.attempts == 2
    assert chunk.error == "NotFound: pamtalk-demand has no version 999"
    assert job.error == f"chunk 0 failed: {chunk.error}"
    assert (job.chunks_done, job.rows_written) == (0, 0)
    assert (await database.rows(SINGLE_DATE)).total == 0

    # The nightly job fails with its farm chunk's reason; what the other chunks wrote is all
    # there and all counted.
    job = await wait_for_job(database, job_id, workers)
    assert job.status == JobStatus.failed
    after = await database.chunks(job_id)
    failed = [c for c in after if c.status == JobStatus.failed]
    assert [(c.kind, c.attempts) for c in failed] == [("esg", 2)]
    assert failed[0].error == "NotFound: pamtalk-esg has no version 999"
    assert job.error == f"chunk {failed[0].index} failed: {failed[0].error}"
    demand = [c.status for c in after if c.kind == "demand"]
    assert demand == [JobStatus.completed] * (len(chunks) - 1)
    assert job.chunks_done == job.chunks_total - 1
    rows = await database.rows(FAIL_DATE)
    assert rows.demand == rows.demand_keys == DEMAND_ROWS
    assert rows.esg == 0
    assert job.rows_written == rows.total
