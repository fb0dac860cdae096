"""The ledger's Celery task: submit a sealed anchor to the anchor sink and record its
receipt (``pamtalk worker``, queue ``blockchain_transactions``; sent by
:mod:`pamtalk.ledger.handover`).

The message is acknowledged after the receipt is committed (late acknowledgement), so a
worker killed before that gives it back to the broker; a failure (database, sink) is retried
with backoff, and whatever still has no receipt is handed over again by the next settle.
"""

from __future__ import annotations

from celery import Celery, Task
from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.ledger import anchors
from pamtalk.ledger.handover import SUBMIT_TASK
from pamtalk.queues import ProcessLoop
from pamtalk.settings import Settings

RETRIES = 8
MAX_COUNTDOWN_S = 60


def register(celery: Celery, settings: Settings) -> None:
    """Add the ledger's task to ``celery``."""
    process = ProcessLoop(lambda: create_engine(settings), _dispose)

    @celery.task(name=SUBMIT_TASK, bind=True, max_retries=RETRIES, shared=False)
    def submit_anchor(self: Task, anchor_id: int) -> bool:
        async def submit(engine: AsyncEngine) -> bool:
            async with create_session_factory(engine).write() as session:
                return await anchors.submit_one(session, anchor_id)

        try:
            return process.run(submit)
        except Exception as exc:
            countdown = min(2**self.request.retries, MAX_COUNTDOWN_S)
            raise self.retry(exc=exc, countdown=countdown) from exc


async def _dispose(engine: AsyncEngine) -> None:
    await engine.dispose()
