"""The batch tasks: score a chunk, plan and launch the nightly job, resume stalled jobs,
log a job's end, and the beat schedule. ``register`` adds them to the worker's app
(``pamtalk worker`` and ``pamtalk beat``, pamtalk.cli.worker)."""

from __future__ import annotations

import functools
import logging
import time
from datetime import date

from celery import Celery, Task
from celery.exceptions import Reject

from pamtalk.batching.celery_app import BEAT_SCHEDULE, stall_limit
from pamtalk.batching.context import BatchContext
from pamtalk.db.models import JobStatus
from pamtalk.db.outage import database_unavailable
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.queues import NOTIFICATIONS, ProcessLoop
from pamtalk.settings import Settings

log = logging.getLogger(__name__)


def register(celery: Celery, settings: Settings) -> None:
    """Add the batch tasks and the beat schedule to ``celery``."""
    celery.conf.beat_schedule = BEAT_SCHEDULE
    # One batch context per worker process (see ProcessLoop).
    process = ProcessLoop(lambda: BatchContext(settings, celery=celery), _close_context)
    # shared=False: each app has its own tasks (Celery's default adds a task to every app).
    retries = settings.batch_chunk_retries

    @celery.task(name="pamtalk.score_chunk", bind=True, max_retries=retries, shared=False)
    def score_chunk(self: Task, job_id: int, index: int) -> int:
        try:
            rows = _run_through_outage(process, settings, job_id, index)
        except Exception as exc:
            if self.request.retries < retries:
                raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
            reason = f"{type(exc).__name__}: {exc}"
            try:
                process.run(lambda ctx: ctx.fail(job_id, index, reason))
            except Exception as unrecorded:
                if database_unavailable(unrecorded):
                    # Acknowledged, the chunk would be neither done nor failed: the job would
                    # wait for the stall sweep. Back to the queue, to be run again.
                    log.warning(
                        "job %s chunk %s: out of retries, and its failure cannot be recorded "
                        "(database unreachable): back to the queue",
                        job_id, index,
                    )  # fmt: skip
                    raise Reject(unrecorded, requeue=True) from exc
                raise
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


def _run_through_outage(
    process: ProcessLoop[BatchContext], settings: Settings, job_id: int, index: int
) -> int:
    """Run the chunk. A database that went away (a restart, a failover) is not the chunk's
    failure: wait for it, up to ``batch_database_wait_s`` from the first outage, and run the
    chunk again, spending none of its retries (their 1 + 2 + 4 s would not outlast a restart,
    and a chunk out of retries could not even record its failure). The message stays
    unacknowledged meanwhile, so a worker that dies waiting gives it back."""
    deadline: float | None = None
    while True:
        try:
            rows: int = process.run(lambda ctx: ctx.run_chunk(job_id, index))
            return rows
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            now = time.monotonic()
            deadline = deadline or now + settings.batch_database_wait_s
            if now >= deadline:
                raise
            log.warning(
                "job %s chunk %s: database unreachable (%s); waiting up to %.0f s for it",
                job_id, index, type(exc).__name__, deadline - now,
            )  # fmt: skip
            wait = functools.partial(BatchContext.wait_for_database, within=deadline - now)
            if not process.run(wait):
                raise


async def _close_context(context: BatchContext) -> None:
    await context.close()


async def _reopen_and_launch(ctx: BatchContext, job_id: int) -> None:
    await ctx.reopen(job_id)
    await ctx.launch(job_id)
