from __future__ import annotations

from collections import Counter
from datetime import date

from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk.db.models import DemandDaily, Farm, Transaction, User
from pamtalk.db.seed import SeedSize, is_empty, seed
from pamtalk.domain import KST


async def test_seed_makes_consistent_seasonal_data(app: FastAPI) -> None:
    async with app.state.pamtalk.sessions.write() as session:
        assert await is_empty(session)
        counts = await seed(
            session,
            SeedSize(farms=60, buyers=20, transactions=8000, days=364),
            today=date(2026, 6, 1),
        )
        assert counts["farms"] == 60 and counts["transactions"] == 8000
        assert not await is_empty(session)
        assert await session.scalar(select(func.count()).select_from(User)) >= 60 + 20
        regions = set(await session.scalars(select(Farm.region)))
        assert len(regions) >= 8

        tx_totals = (
            await session.execute(
                select(
                    func.sum(Transaction.quantity_g), func.sum(Transaction.total_krw), func.count()
                )
            )
        ).one()
        agg_totals = (
            await session.execute(
                select(
                    func.sum(DemandDaily.quantity_g),
                    func.sum(DemandDaily.value_krw),
                    func.sum(DemandDaily.transactions),
                )
            )
        ).one()
        assert tuple(tx_totals) == tuple(agg_totals)

        stamps = list(await session.scalars(select(Transaction.created_at)))
    weekdays = Counter(stamp.astimezone(KST).weekday() for stamp in stamps)
    assert weekdays[6] < 0.3 * weekdays[0]  # Sunday markets are nearly closed
    assert all(stamp.date() < date(2026, 6, 1) for stamp in stamps)
    months = Counter(stamp.astimezone(KST).month for stamp in stamps)
    assert len(months) == 12
