"""The Celery app: the seed's queues, late acknowledgement (a chunk whose worker dies is
delivered again), and the nightly scoring at 02:00 Asia/Seoul.

    pamtalk worker            # celery worker on PAMTALK_CELERY_BROKER_URL
    pamtalk beat              # the schedule
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from celery.signals import worker_process_shutdown

from pamtalk.batching import runner
from pamtalk.db.models import JobStatus
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

PREDICTIONS, ANALYTICS, NOTIFICATIONS = (
    "prediction_requests",
    "analytics_data",
    "notification_events",
)
QUEUES = (PREDICTIONS, ANALYTICS, NOTIFICATIONS)
CHUNK_QUEUE = {"demand": PREDICTIONS, "esg": ANALYTICS}
NIGHTLY_AT = crontab(hour=2, minute=0)  # in the app's timezone, Asia/Seoul


def create_celery(settings: Settings) -> Celery:
    celery = Celery("pamtalk", broker=settings.celery_broker_url or "memory://")
    celery.conf.update(
        task_default_queue=PREDICTIONS,  # the others are made on first use
        # Acknowledge after the chunk is written, and give a chunk back if its worker dies:
        # chunks are idempotent, so running one twice is safe, losing one is not.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=_transport_options(settings.celery_visibility_timeout),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # progress lives in the job record, not a result backend
        timezone="Asia/Seoul",
        enable_utc=True,
        beat_schedule={
            "nightly-scoring": {"task": "pamtalk.nightly", "schedule": NIGHTLY_AT},
            "resume-stalled": {"task": "pamtalk.resume_stalled", "schedule": 600.0},
        },
    )
    return celery


def _transport_options(visibility_timeout: int) -> dict[str, int]:
    """Redis gives back a task whose worker died without acknowledging it once it has been
    unacknowledged for ``visibility_timeout`` seconds, but only when a worker sweeps for such
    tasks: kombu sweeps every ``unacked_restore_interval`` x ``unacked_restore_throttle``
    seconds (10 x 10 by default), so a short timeout would still wait up to 100 s. Sweep
    every half timeout (1 s to 60 s) instead; RabbitMQ ignores these."""
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(60, visibility_timeout // 2)),
        "unacked_restore_throttle": 1,
    }


settings = Settings()
app = create_celery(settings)

# One event loop and one batch context per worker process, made after the fork.
_loop: asyncio.Runner | None = None
_context: runner.BatchContext | None = None


def _run(work: Any) -> Any:
    global _loop, _context
    if _loop is None:
        _loop = asyncio.Runner()
    if _context is None:
        _context = runner.BatchContext(settings)
    return _loop.run(work(_context))


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _loop is not None and _context is not None:
        _loop.run(_context.close())
        _loop.close()


def dispatch(celery: Celery, job_id: int, chunks: list[tuple[int, str]]) -> None:
    """Fan a job's chunks out to the workers, each on its kind's queue."""
    for index, kind in chunks:
        celery.send_task("pamtalk.score_chunk", args=[job_id, index], queue=CHUNK_QUEUE[kind])


@app.task(name="pamtalk.score_chunk", bind=True, max_retries=settings.batch_chunk_retries)
def score_chunk(self: Task, job_id: int, index: int) -> int:
    try:
        rows: int = _run(lambda ctx: runner.run_one(ctx, job_id, index))
    except Exception as exc:
        if self.request.retries < settings.batch_chunk_retries:
            raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
        reason = f"{type(exc).__name__}: {exc}"
        _run(lambda ctx: runner.fail(ctx, job_id, index, reason))
        app.send_task("pamtalk.job_finished", args=[job_id], queue=NOTIFICATIONS)
        raise
    job = _run(lambda ctx: runner.status(ctx, job_id))
    if job.status == JobStatus.completed:
        app.send_task("pamtalk.job_finished", args=[job_id], queue=NOTIFICATIONS)
    return rows


@app.task(name="pamtalk.nightly")
def nightly(run_date: str | None = None) -> int:
    """Plan tonight's job (champions pinned now) and fan it out."""
    day = date.fromisoformat(run_date) if run_date else utcnow().astimezone(KST).date()
    job = _run(lambda ctx: runner.plan_nightly(ctx, day))
    dispatch(app, job.id, _run(lambda ctx: runner.chunk_kinds(ctx, job.id)))
    return int(job.id)


def stall_limit(settings: Settings) -> timedelta:
    """How long a job may go without a finished chunk before its open chunks are sent
    again: past any redelivery the broker would do by itself."""
    return timedelta(seconds=max(600, 2 * settings.celery_visibility_timeout))


@app.task(name="pamtalk.resume_stalled")
def resume_stalled() -> list[int]:
    """Send again the open chunks of jobs that stopped moving. Redis can lose a message
    whose worker is killed between taking it and recording it as unacknowledged (kombu
    #305); chunks are idempotent, so a duplicate costs only time."""
    resumed = _run(lambda ctx: runner.stalled(ctx, stall_limit(settings)))
    for job_id in resumed:
        log.warning("job %s stalled: sending its open chunks again", job_id)
        dispatch(app, job_id, _run(lambda ctx, j=job_id: runner.reopen(ctx, j)))
    return list(resumed)


@app.task(name="pamtalk.job_finished")
def job_finished(job_id: int) -> None:
    job = _run(lambda ctx: runner.status(ctx, job_id))
    log.info(
        "job %s %s: %s/%s chunks, %s rows%s",
        job.id,
        job.status,
        job.chunks_done,
        job.chunks_total,
        job.rows_written,
        f" ({job.error})" if job.error else "",
    )
