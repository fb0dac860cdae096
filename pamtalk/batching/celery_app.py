"""Batch scoring on the Celery queues (pamtalk.queues): which queue each kind of chunk goes
to, the nightly scoring at 02:00 Asia/Seoul, and when a stalled job is sent again. A batch
context sends chunks with ``dispatch``; ``pamtalk worker``/``pamtalk beat`` run the tasks
(tasks.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from pamtalk.queues import ANALYTICS, PREDICTIONS
from pamtalk.settings import Settings

CHUNK_QUEUE = {"demand": PREDICTIONS, "esg": ANALYTICS}
NIGHTLY_AT = crontab(hour=2, minute=0)  # in the app's timezone, Asia/Seoul
BEAT_SCHEDULE = {
    "nightly-scoring": {"task": "pamtalk.nightly", "schedule": NIGHTLY_AT},
    "resume-stalled": {"task": "pamtalk.resume_stalled", "schedule": 600.0},
}


def dispatch(celery: Celery, job_id: int, chunks: list[tuple[int, str]]) -> None:
    """Fan a job's chunks out to the workers, each on its kind's queue."""
    for index, kind in chunks:
        celery.send_task("pamtalk.score_chunk", args=[job_id, index], queue=CHUNK_QUEUE[kind])


def stall_limit(settings: Settings) -> timedelta:
    """How long a job may go without a finished chunk before its open chunks are sent
    again: past any redelivery the broker would do by itself."""
    return timedelta(seconds=max(600, 2 * settings.celery_visibility_timeout))
