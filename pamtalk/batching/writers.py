"""Bulk upserts of batch results, keyed so that a chunk written twice leaves one row per key:
(run date, series, target date, model version) and (run date, farm, model version)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import DemandForecast, EsgAssessment
from pamtalk.db.upsert import insert_for

_FORECAST_VALUES = ("p10_kg", "p50_kg", "p90_kg", "model_name", "batch_job_id", "created_at")
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


async def upsert_forecasts(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    stmt = insert_for(session, DemandForecast)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_date", "crop", "region", "target_date", "model_version"],
        set_={name: stmt.excluded[name] for name in _FORECAST_VALUES},
    )
    # A list of parameter sets: SQLAlchemy sends them as batched multi-row INSERTs.
    await session.execute(stmt, rows)
    return len(rows)


async def upsert_assessments(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    stmt = insert_for(session, EsgAssessment)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_date", "farm_id", "model_version"],
        index_where=text("batch_job_id IS NOT NULL"),
        set_={name: stmt.excluded[name] for name in _ESG_VALUES},
    )
    await session.execute(stmt, rows)
    return len(rows)
