"""Alembic, driven from code: ``pamtalk db upgrade``, ``pamtalk init``, readiness and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(
    connection: Connection | None = None, settings: Settings | None = None
) -> Config:
    """``settings``: what data migrations read (the secret key that encrypts webhook
    secrets); the environment's when None."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["settings"] = settings
    return config


async def upgrade(
    engine: AsyncEngine, revision: str = "head", settings: Settings | None = None
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync, settings), revision))


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
