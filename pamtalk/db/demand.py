"""The platform's daily demand aggregate as models read it: one query for training (every
series), online forecasts (one series) and batch scoring (a chunk of series)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import DemandDaily

DailyRow = tuple[str, str, date, int, int]  # crop, region, day, quantity_g, value_krw


async def daily_rows(
    session: AsyncSession,
    series: Sequence[tuple[str, str]] | None = None,
    first: date | None = None,
    last: date | None = None,
) -> list[DailyRow]:
    """Aggregate rows by (crop, region) then day, for ``series`` (every series when None)
    from ``first`` to ``last`` inclusive (unbounded when None)."""
    query = select(
        DemandDaily.crop,
        DemandDaily.region,
        DemandDaily.day,
        DemandDaily.quantity_g,
        DemandDaily.value_krw,
    ).order_by(DemandDaily.crop, DemandDaily.region, DemandDaily.day)
    if series is not None:
        query = query.where(tuple_(DemandDaily.crop, DemandDaily.region).in_(list(series)))
    if first is not None:
        query = query.where(DemandDaily.day >= first)
    if last is not None:
        query = query.where(DemandDaily.day <= last)
    found = await session.execute(query)
    return [(crop, region, day, grams, value) for crop, region, day, grams, value in found]
