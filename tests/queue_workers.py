"""Real ``pamtalk worker`` processes on the ledger's and the notifications' queues
(RabbitMQ at PAMTALK_TEST_BROKER_URL) for tests on the PostgreSQL stack: the batch suite's
Worker (its own process group, SIGKILL-able whole), one per test module unless a test kills
it, with the queues emptied before and after, so that nothing is left for other workers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from pamtalk import queues
from pamtalk.settings import Settings
from tests import services
from tests.batching.conftest import BROKERS, Worker, process_env

BROKER_URL = BROKERS["rabbitmq"]
OUR_QUEUES = (queues.BLOCKCHAIN, queues.NOTIFICATIONS)


def purge() -> None:
    celery = queues.create_celery(Settings(celery_broker_url=BROKER_URL))
    with celery, celery.connection_for_write() as conn:
        for queue in OUR_QUEUES:
            channel = conn.channel()
            try:
                channel.queue_purge(queue)
            except conn.channel_errors:
                pass  # never declared on this broker yet
            finally:
                with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
                    channel.close()


class QueueWorkers:
    """Workers for one database, one at a time (concurrency 1: one task at a time, so a
    test that kills the worker knows what it held): ``ready`` is the live one or a new
    one; ``Worker.kill`` ends one whole with SIGKILL."""

    def __init__(self, database_url: str, folder: Path) -> None:
        self.database_url, self.folder = database_url, folder
        self.started: list[Worker] = []

    async def ready(self) -> Worker:
        if not self.started or self.started[-1].process.poll() is not None:
            env = process_env(
                PAMTALK_ENV="test",
                PAMTALK_DATABASE_URL=self.database_url,
                PAMTALK_CELERY_BROKER_URL=BROKER_URL,
                PAMTALK_WEBHOOK_ALLOW_PRIVATE="1",
            )
            name = f"worker{len(self.started)}"
            self.started.append(Worker(env, self.folder, name, concurrency=1))
        worker = self.started[-1]
        await worker.ready()
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log.name}\n{w.output()[-3000:]}" for w in self.started)

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@contextlib.contextmanager
def queue_workers(database_url: str, folder: Path) -> Iterator[QueueWorkers]:
    services.need(BROKER_URL, 5672, "RabbitMQ")
    purge()
    started = QueueWorkers(database_url, folder)
    try:
        yield started
    finally:
        started.kill_all()
        purge()


def broker_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"celery_broker_url": BROKER_URL})


async def eventually(
    check: Callable[[], Awaitable[bool]], workers: QueueWorkers, what: str, within: float = 30
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s\n{workers.logs()}")
        await asyncio.sleep(0.1)
