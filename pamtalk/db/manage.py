"""Database chores behind ``pamtalk init`` and ``pamtalk db``: migrate, seed, bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db import demand, seed
from pamtalk.db.migrate import upgrade
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.errors import Conflict, Forbidden
from pamtalk.settings import Settings


@asynccontextmanager
async def open_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    # CLI chores (seeding, backfills) may rightly run long statements.
    engine = create_engine(settings, statement_timeout=False)
    try:
        async with create_session_factory(engine).write() as session:
            yield session
    finally:
        await engine.dispose()


async def upgrade_database(settings: Settings) -> None:
    engine = create_engine(settings, statement_timeout=False)
    try:
        await upgrade(engine, settings=settings)
    finally:
        await engine.dispose()


async def seed_database(
    settings: Settings, size: seed.SeedSize, ledger: seed.SeedHook | None = None
) -> dict[str, int]:
    """Demo data into an empty database (``ledger``: see ``seed.seed``). Refused in prod
    (Forbidden) and on a database that already has farms (Conflict)."""
    if settings.env == "prod":
        raise Forbidden("PAMTALK_ENV=prod refuses demo users and data")
    async with open_session(settings) as session:
        if not await seed.is_empty(session):
            raise Conflict("the database already has farms; not seeding")
        return await seed.seed(session, size, ledger=ledger)


async def daily_demand(settings: Settings) -> list[demand.DailyRow]:
    """The whole daily demand aggregate (crop, region, day, quantity_g, value_krw), for training."""
    async with open_session(settings) as session:
        return await demand.daily_rows(session)


async def register_admin_key(settings: Settings) -> seed.Rotation | None:
    """Make PAMTALK_ADMIN_API_KEY the admin bootstrap key, revoking the one it replaces;
    None when the setting is unset."""
    if not settings.admin_api_key:
        return None
    async with open_session(settings) as session:
        return await seed.rotate_admin_api_key(session, settings.admin_api_key)
