"""Migrations build the schema from empty on both databases, and match the models exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from pamtalk.api.app import create_app
from pamtalk.db.migrate import alembic_config, head_revision, upgrade
from pamtalk.db.models import Base
from pamtalk.db.session import create_engine
from pamtalk.settings import Settings
from tests import services
from tests.conftest import running


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url = await services.create_database()
    yield url
    await services.drop_database(url)


def drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_from_empty_has_no_drift_and_downgrades(empty_database: str) -> None:
    engine = create_engine(Settings(database_url=empty_database))
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(drift) == []
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
    finally:
        await engine.dispose()


async def test_readyz_reports_unmigrated_database(empty_database: str) -> None:
    app = create_app(Settings(database_url=empty_database))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = await client.get("/readyz")
            assert before.status_code == 503
            assert before.json()["checks"]["migrations"] == f"at None, head is {head_revision()}"
            await upgrade(app.state.pamtalk.engine)
            after = await client.get("/readyz")
            assert after.status_code == 200
            assert (await client.get("/healthz")).json() == {"status": "ok"}
