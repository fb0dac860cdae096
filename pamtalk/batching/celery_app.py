"""The Celery app's configuration: the seed's queues, late acknowledgement (a chunk whose
worker dies is delivered again), and the nightly scoring at 02:00 Asia/Seoul. Built from the
settings of the process that makes it, never at import: a batch context sends chunks with
it, and ``pamtalk worker``/``pamtalk beat`` run it with the tasks (tasks.py) added."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from pamtalk.settings import Settings

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


def dispatch(celery: Celery, job_id: int, chunks: list[tuple[int, str]]) -> None:
    """Fan a job's chunks out to the workers, each on its kind's queue."""
    for index, kind in chunks:
        celery.send_task("pamtalk.score_chunk", args=[job_id, index], queue=CHUNK_QUEUE[kind])


def stall_limit(settings: Settings) -> timedelta:
    """How long a job may go without a finished chunk before its open chunks are sent
    again: past any redelivery the broker would do by itself."""
    return timedelta(seconds=max(600, 2 * settings.celery_visibility_timeout))
