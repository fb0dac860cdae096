"""``celery_task_queue_length{queue}`` comes from the broker: the messages waiting in a queue,
on the real RabbitMQ and Redis, asked without creating or emptying anything (the test uses
queues of its own, and deletes only those)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from pamtalk.api.app import create_app
from pamtalk.api.metrics import CELERY_QUEUE_LENGTH
from pamtalk.api.queue_lengths import queue_lengths
from pamtalk.queues import QUEUES, create_celery
from pamtalk.settings import Settings
from tests import services
from tests.conftest import running

RABBITMQ = os.environ.get("PAMTALK_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = {"rabbitmq": (RABBITMQ, 5672), "redis": (services.REDIS_URL, 6379)}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    url, port = BROKERS[request.param]
    services.need(url, port, request.param)
    return url


@pytest.fixture
def own_queue(broker: str) -> Iterator[str]:
    """A queue of this test's own, holding three messages; deleted afterwards."""
    name = f"pamtalk-test-length-{uuid.uuid4().hex[:8]}"
    celery = create_celery(Settings(celery_broker_url=broker))
    with celery:
        for n in range(3):  # a task no worker runs, on a queue no worker reads
            celery.send_task("pamtalk.tests.never_run", args=[n], queue=name)
        yield name
        with celery.connection_for_write() as connection:
            channel = connection.default_channel
            channel.queue_delete(name)
            channel.exchange_delete(name)


def test_counts_the_waiting_messages_and_creates_nothing(broker: str, own_queue: str) -> None:
    never_declared = f"pamtalk-test-absent-{uuid.uuid4().hex[:8]}"
    assert queue_lengths(broker, [own_queue, never_declared]) == {own_queue: 3, never_declared: 0}
    # asking again finds the same: nothing was consumed, and the absent queue was not made
    assert queue_lengths(broker, [own_queue, never_declared]) == {own_queue: 3, never_declared: 0}


def gauge(queue: str) -> float | None:
    for metric in CELERY_QUEUE_LENGTH.collect():
        for sample in metric.samples:
            if sample.labels == {"queue": queue}:
                return sample.value
    return None


async def test_the_api_feeds_the_gauge_for_every_queue(broker: str, settings: Settings) -> None:
    CELERY_QUEUE_LENGTH.clear()
    fed = settings.model_copy(
        update={"celery_broker_url": broker, "queue_metrics_interval_s": 0.05}
    )
    app: FastAPI = create_app(fed)
    async with running(app):
        for _ in range(200):
            if all(gauge(q) is not None for q in QUEUES):
                break
            await asyncio.sleep(0.05)
    assert all((value := gauge(q)) is not None and value >= 0 for q in QUEUES)


async def test_without_a_broker_nothing_is_asked(settings: Settings) -> None:
    CELERY_QUEUE_LENGTH.clear()
    app = create_app(settings.model_copy(update={"queue_metrics_interval_s": 0.05}))
    async with running(app):
        await asyncio.sleep(0.3)
    assert all(gauge(q) is None for q in QUEUES)
