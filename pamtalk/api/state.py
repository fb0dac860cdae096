"""What the app holds for its lifetime, built once from Settings in the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.api.metrics import ActiveUsers
from pamtalk.api.ratelimit import RateLimits
from pamtalk.batching.context import BatchContext
from pamtalk.cache import Cache
from pamtalk.db.session import SessionFactory
from pamtalk.security import PasswordHashing
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    cache: Cache
    predictor: PredictorService
    # Sessions and login counters, apart from cached responses (pamtalk.cache).
    security: Cache
    rate_limits: RateLimits
    hashing: PasswordHashing
    active_users: ActiveUsers = field(default_factory=ActiveUsers)
    # Batch jobs, made on first use: most API processes never start one.
    _batch: BatchContext | None = None

    @property
    def batch(self) -> BatchContext:
        if self._batch is None:
            self._batch = BatchContext(self.settings, self.engine)
        return self._batch

    async def close_jobs(self, grace: float = 30.0) -> None:
        """Let in-process jobs finish (up to ``grace`` seconds), then release what they held."""
        if self._batch is not None:
            await self._batch.close(grace)
