"""Feeds ``celery_task_queue_length{queue}`` from the broker: the messages waiting in each of
pamtalk/queues.py's queues, asked with a passive declare (RabbitMQ's message count, Redis's
list length through kombu), which creates nothing. A queue not declared yet holds nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from pamtalk import extras
from pamtalk.api.metrics import CELERY_QUEUE_LENGTH
from pamtalk.queues import QUEUES, create_celery
from pamtalk.settings import Settings


def queue_lengths(broker_url: str, queues: Sequence[str]) -> dict[str, int]:
    """Messages ready in each of ``queues`` (not those a worker holds unacknowledged)."""
    with extras.needs("batch", "celery_task_queue_length"):
        celery = create_celery(Settings(celery_broker_url=broker_url))

    lengths: dict[str, int] = {}
    with celery, celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        missing = connection.channel_errors  # RabbitMQ: 404 NOT_FOUND; Redis: ChannelError
        for queue in queues:
            # One channel per queue: RabbitMQ closes a channel whose passive declare failed.
            channel = connection.channel()
            try:
                lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except missing:
                lengths[queue] = 0
            finally:
                with contextlib.suppress(*connection.connection_errors, *missing):
                    channel.close()
    return lengths


async def record(broker_url: str) -> None:
    """Ask the broker (off the event loop) and set the gauge."""
    lengths = await asyncio.to_thread(queue_lengths, broker_url, QUEUES)
    for queue, length in lengths.items():
        CELERY_QUEUE_LENGTH.labels(queue).set(length)
