"""Job records: a job pins the champion versions when it starts and is split into chunks;
each chunk's completion is written with its results, so progress counts are exact however
often a chunk runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import (
    BatchChunk,
    BatchJob,
    Farm,
    FarmStatus,
    JobStatus,
    OutboxEvent,
    Role,
    User,
)
from pamtalk.db.types import utcnow
from pamtalk.domain import CROPS, REGIONS
from pamtalk.errors import Conflict, NotFound, TooManyRequests

ChunkKind = Literal["demand", "esg"]
NIGHTLY = "nightly"
OPEN = (JobStatus.pending, JobStatus.running)
QUOTA_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class ChunkPlan:
    kind: ChunkKind
    items: list[Any]  # "crop:region" series, or farm ids


def every_series() -> list[str]:
    return [f"{crop}:{region}" for crop in CROPS for region in REGIONS]


async def active_farm_ids(session: AsyncSession) -> list[int]:
    rows = await session.scalars(
        select(Farm.id).where(Farm.status == FarmStatus.active).order_by(Farm.id)
    )
    return list(rows)


def split(kind: ChunkKind, items: list[Any], size: int) -> list[ChunkPlan]:
    return [ChunkPlan(kind, items[i : i + size]) for i in range(0, len(items), size)]


async def create(
    session: AsyncSession,
    kind: str,
    run_date: date,
    versions: dict[str, str],
    chunks: list[ChunkPlan],
    created_by: int | None = None,
) -> BatchJob:
    job = BatchJob(
        kind=kind,
        run_date=run_date,
        status=JobStatus.pending,
        params={"versions": versions},
        chunks_total=len(chunks),
        created_by=created_by,
    )
    session.add(job)
    await session.flush()
    session.add_all(
        BatchChunk(job_id=job.id, index=i, kind=c.kind, items=c.items) for i, c in enumerate(chunks)
    )
    await session.commit()
    return job


async def admit(
    session: AsyncSession,
    user_id: int,
    kind: str,
    target: Any,
    per_day: int,
) -> None:
    """Refuse a job the user may not start now, in the transaction that then creates it: a
    second open (pending or running) job of the same kind and target (409 naming the
    first), or more than ``per_day`` jobs in 24 hours (429). The user's row is locked
    first (SQLite: the transaction's write lock), so that concurrent requests of one user
    are judged one after the other."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    rows = await session.execute(
        select(BatchJob.id, BatchJob.status, BatchJob.run_date, BatchChunk.items)
        .join(BatchChunk, BatchChunk.job_id == BatchJob.id)
        .where(BatchJob.created_by == user_id, BatchJob.kind == kind, BatchJob.status.in_(OPEN))
        .where(BatchChunk.index == 0)
    )
    for job_id, status, run_date, items in rows:
        same = run_date == target if kind == NIGHTLY else items == [target]
        if same:
            raise Conflict(
                f"you already have {kind} job {job_id} for {target} ({status}): follow "
                f"/v1/jobs/{job_id} instead of starting another",
                details={"job_id": job_id},
                headers={"Location": f"/v1/jobs/{job_id}"},
            )
    since = utcnow() - QUOTA_WINDOW
    started: list[datetime] = list(
        await session.scalars(
            select(BatchJob.created_at)
            .where(BatchJob.created_by == user_id, BatchJob.created_at >= since)
            .order_by(BatchJob.created_at)
        )
    )
    if len(started) >= per_day:
        wait = started[-per_day] + QUOTA_WINDOW - utcnow()
        retry_after = max(1, int(wait.total_seconds()) + 1)
        raise TooManyRequests(
            f"you have started {len(started)} jobs in the last 24 hours, the most allowed "
            f"(PAMTALK_JOBS_PER_USER_PER_DAY={per_day}); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


async def get(session: AsyncSession, job_id: int) -> BatchJob:
    job = await session.get(BatchJob, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def chunks(
    session: AsyncSession, job_id: int, unfinished: bool = False
) -> list[tuple[int, str]]:
    """The job's chunks (index, kind) in order; with ``unfinished``, those not completed."""
    query = select(BatchChunk.index, BatchChunk.kind).where(BatchChunk.job_id == job_id)
    if unfinished:
        query = query.where(BatchChunk.status != JobStatus.completed)
    rows = await session.execute(query.order_by(BatchChunk.index))
    return [(int(i), str(k)) for i, k in rows]


async def start_chunk(session: AsyncSession, job_id: int, index: int) -> BatchChunk:
    """Count the attempt and mark the job running; returns the chunk to work on."""
    chunk = await session.get(BatchChunk, (job_id, index), populate_existing=True)
    if chunk is None:
        raise NotFound(f"job {job_id} has no chunk {index}")
    chunk.attempts += 1
    await session.execute(
        update(BatchJob)
        .where(BatchJob.id == job_id, BatchJob.status == JobStatus.pending)
        .values(status=JobStatus.running, started_at=utcnow())
    )
    await session.commit()
    return chunk


async def finish_chunk(session: AsyncSession, job_id: int, index: int, rows: int) -> None:
    """Within the transaction that wrote the chunk's rows: mark it done and recount the job
    from its chunks. The job row is locked so that concurrent chunks recount in turn."""
    await session.execute(
        update(BatchChunk)
        .where(BatchChunk.job_id == job_id, BatchChunk.index == index)
        .values(status=JobStatus.completed, rows_written=rows, error=None, finished_at=utcnow())
    )
    await _lock(session, job_id)
    done, written = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(BatchChunk.rows_written), 0)).where(
                BatchChunk.job_id == job_id, BatchChunk.status == JobStatus.completed
            )
        )
    ).one()
    job = await get(session, job_id)
    job.chunks_done, job.rows_written = int(done), int(written)
    if job.chunks_done == job.chunks_total and job.status != JobStatus.failed:
        job.status, job.finished_at = JobStatus.completed, utcnow()
        # The notification, in the same transaction (pamtalk.notify relays it).
        day = job.run_date.isoformat() if job.run_date else None
        report = {"job_id": job.id, "kind": job.kind, "run_date": day, "rows": job.rows_written}
        staff = (Role.admin, Role.analyst)
        session.add(OutboxEvent.new("batch.completed", report, roles=staff))


async def fail_chunk(session: AsyncSession, job_id: int, index: int, reason: str) -> None:
    """A chunk that failed for good fails its job, with the reason; nothing is dropped
    silently. Rows other chunks wrote stay (each is keyed and complete on its own)."""
    reason = reason[:1900]
    await session.execute(
        update(BatchChunk)
        .where(BatchChunk.job_id == job_id, BatchChunk.index == index)
        .values(status=JobStatus.failed, error=reason, finished_at=utcnow())
    )
    await _lock(session, job_id)
    job = await get(session, job_id)
    job.status, job.finished_at = JobStatus.failed, utcnow()
    job.error = f"chunk {index} failed: {reason}"
    await session.commit()


async def _lock(session: AsyncSession, job_id: int) -> None:
    """FOR NO KEY UPDATE, not FOR UPDATE: the chunk's result rows reference the job, so their
    inserts already hold FOR KEY SHARE on its row; FOR UPDATE conflicts with that, and two
    chunks finishing together would each wait for the other (a deadlock). NO KEY UPDATE
    still makes concurrent recounts take turns."""
    await session.execute(
        select(BatchJob.id).where(BatchJob.id == job_id).with_for_update(key_share=True)
    )


def progress(job: BatchJob) -> dict[str, Any]:
    """The job as /v1/jobs and the CLI show it."""
    end = job.finished_at or utcnow()
    seconds = (end - job.started_at).total_seconds() if job.started_at else 0.0
    return {
        "id": job.id,
        "kind": job.kind,
        "run_date": job.run_date,
        "status": job.status,
        "versions": job.params.get("versions", {}),
        "chunks_done": job.chunks_done,
        "chunks_total": job.chunks_total,
        "rows_written": job.rows_written,
        "rows_per_second": round(job.rows_written / seconds, 1) if seconds > 0 else None,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


async def reopen(session: AsyncSession, job_id: int) -> list[tuple[int, str]]:
    """Make every unfinished chunk pending again, and a failed job running again; returns
    those chunks (index, kind) to run. For a job whose chunks were lost (a message dropped
    by the broker, a process cut off) or failed for a reason since fixed."""
    await _lock(session, job_id)
    job = await get(session, job_id)
    await session.execute(
        update(BatchChunk)
        .where(BatchChunk.job_id == job_id, BatchChunk.status != JobStatus.completed)
        .values(status=JobStatus.pending, error=None)
    )
    if job.status == JobStatus.failed:
        job.status, job.error, job.finished_at = JobStatus.running, None, None
    open_chunks = await chunks(session, job_id, unfinished=True)
    await session.commit()
    return open_chunks


async def stalled(session: AsyncSession, idle: timedelta) -> list[int]:
    """Unfinished jobs in which no chunk has finished for ``idle`` (nor has the job started
    within it)."""
    last = (
        select(func.max(BatchChunk.finished_at))
        .where(BatchChunk.job_id == BatchJob.id)
        .scalar_subquery()
    )
    since = func.coalesce(last, BatchJob.started_at, BatchJob.created_at)
    found = await session.scalars(
        select(BatchJob.id).where(
            BatchJob.status.in_([JobStatus.pending, JobStatus.running]),
            since < utcnow() - idle,
        )
    )
    return list(found)


async def ended(session: AsyncSession, job_ids: list[int]) -> list[int]:
    """Those of ``job_ids`` that are completed or failed."""
    found = await session.scalars(
        select(BatchJob.id).where(
            BatchJob.id.in_(job_ids), BatchJob.status.in_([JobStatus.completed, JobStatus.failed])
        )
    )
    return list(found)
