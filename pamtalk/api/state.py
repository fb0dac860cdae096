"""What the app holds for its lifetime, built once from Settings in the app factory."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.api.metrics import ActiveUsers
from pamtalk.batching import runner
from pamtalk.cache import Cache
from pamtalk.db.session import SessionFactory
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    cache: Cache
    predictor: PredictorService
    active_users: ActiveUsers = field(default_factory=ActiveUsers)
    # Background jobs, made on first use: most API processes never start one.
    _batch: runner.BatchContext | None = None
    _celery: Any = None
    _jobs: set[asyncio.Task[Any]] = field(default_factory=set)

    def batch_context(self) -> runner.BatchContext:
        if self._batch is None:
            self._batch = runner.BatchContext(self.settings, self.engine)
        return self._batch

    async def start_job(self, job_id: int) -> None:
        """On the workers when a broker is configured, else in this process."""
        ctx = self.batch_context()
        if self.settings.celery_broker_url is None:
            task = asyncio.create_task(runner.run_inline(ctx, job_id))
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)
            return
        from pamtalk.batching import celery_app

        if self._celery is None:
            self._celery = celery_app.create_celery(self.settings)
        chunks = await runner.chunk_kinds(ctx, job_id)
        await asyncio.to_thread(celery_app.dispatch, self._celery, job_id, chunks)

    async def close_jobs(self, grace: float = 30.0) -> None:
        """Let in-process jobs finish (each chunk commits whole, so a cut one is redone by
        the next run); then release what they held."""
        if self._jobs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._jobs, return_exceptions=True), grace)
        if self._batch is not None:
            await self._batch.close()
