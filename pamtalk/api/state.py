"""What the app holds for its lifetime, built once from Settings in the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.api.metrics import ActiveUsers
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
