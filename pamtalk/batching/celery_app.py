"""The Celery app: the seed's queues, late acknowledgement (a chunk whose worker dies is
delivered again), and the nightly scoring at 02:00 Asia/Seoul. Built from the settings of
the process that starts it (``pamtalk worker``, ``pamtalk beat``, or a batch context sending
chunks), never at import.

    pamtalk worker            # celery worker on PAMTALK_CELERY_BROKER_URL
    pamtalk beat              # the schedule
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import TypeVar

from celery import Celery, Task
from celery.schedules import crontab
from celery.signals import worker_process_shutdown

from pamtalk.batching.context import BatchContext
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

T = TypeVar("T")


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
    _register_tasks(celery, settings)
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


def dispatch(celery: Celery, job_id: int, chunks: list[tuple[int, str]]) -> None:
    """Fan a job's chunks out to the workers, each on its kind's queue."""
    for index, kind in chunks:
        celery.send_task("pamtalk.score_chunk", args=[job_id, index], queue=CHUNK_QUEUE[kind])


def stall_limit(settings: Settings) -> timedelta:
    """How long a job may go without a finished chunk before its open chunks are sent
    again: past any redelivery the broker would do by itself."""
    return timedelta(seconds=max(600, 2 * settings.celery_visibility_timeout))


class WorkerProcess:
    """One event loop and one batch context per worker process, made on first use: after
    the fork, so that no connection is shared between processes."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings, self.celery = settings, celery
        self._loop: asyncio.Runner | None = None
        self._context: BatchContext | None = None

    def run(self, work: Callable[[BatchContext], Awaitable[T]]) -> T:
        if self._loop is None:
            self._loop = asyncio.Runner()
        if self._context is None:
            self._context = BatchContext(self.settings, celery=self.celery)
        context = self._context
        # Runner.run takes a coroutine; wrapping the awaitable keeps work's type.
        return self._loop.run(_awaited(work(context)))

    def close(self) -> None:
        if self._loop is not None and self._context is not None:
            self._loop.run(self._context.close())
            self._loop.close()
        self._loop = self._context = None


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _register_tasks(celery: Celery, settings: Settings) -> None:
    # shared=False: each app has its own tasks (Celery's default adds a task to every app).
    process = WorkerProcess(settings, celery)
    worker_process_shutdown.connect(lambda **_: process.close(), weak=False)
    retries = settings.batch_chunk_retries

    @celery.task(name="pamtalk.score_chunk", bind=True, max_retries=retries, shared=False)
    def score_chunk(self: Task, job_id: int, index: int) -> int:
        try:
            rows: int = process.run(lambda ctx: ctx.run_chunk(job_id, index))
        except Exception as exc:
            if self.request.retries < retries:
                raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
            reason = f"{type(exc).__name__}: {exc}"
            process.run(lambda ctx: ctx.fail(job_id, index, reason))
            celery.send_task("pamtalk.job_finished", args=[job_id], queue=NOTIFICATIONS)
            raise
        job = process.run(lambda ctx: ctx.status(job_id))
        if job.status == JobStatus.completed:
            celery.send_task("pamtalk.job_finished", args=[job_id], queue=NOTIFICATIONS)
        return rows

    @celery.task(name="pamtalk.nightly", shared=False)
    def nightly(run_date: str | None = None) -> int:
        """Plan tonight's job (champions pinned now) and fan it out."""
        day = date.fromisoformat(run_date) if run_date else utcnow().astimezone(KST).date()
        job = process.run(lambda ctx: ctx.plan_nightly(day))
        process.run(lambda ctx: ctx.launch(job.id))
        return int(job.id)

    @celery.task(name="pamtalk.resume_stalled", shared=False)
    def resume_stalled() -> list[int]:
        """Send again the open chunks of jobs that stopped moving. Redis can lose a message
        whose worker is killed between taking it and recording it as unacknowledged (kombu
        #305); chunks are idempotent, so a duplicate costs only time."""
        resumed = process.run(lambda ctx: ctx.stalled(stall_limit(settings)))
        for job_id in resumed:
            log.warning("job %s stalled: sending its open chunks again", job_id)
            process.run(functools.partial(_reopen_and_launch, job_id=job_id))
        return list(resumed)

    @celery.task(name="pamtalk.job_finished", shared=False)
    def job_finished(job_id: int) -> None:
        job = process.run(lambda ctx: ctx.status(job_id))
        log.info(
            "job %s %s: %s/%s chunks, %s rows%s",
            job.id,
            job.status,
            job.chunks_done,
            job.chunks_total,
            job.rows_written,
            f" ({job.error})" if job.error else "",
        )


async def _reopen_and_launch(ctx: BatchContext, job_id: int) -> None:
    await ctx.reopen(job_id)
    await ctx.launch(job_id)
