"""The demand model trains on the platform's own daily demand aggregate."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from pamtalk.db import manage
from pamtalk.db.seed import SeedSize
from pamtalk.models.demand.data import from_daily_aggregate
from pamtalk.settings import Settings
from pamtalk.training.pipeline import build_candidate


def test_train_demand_from_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db")

    async def prepare() -> list[tuple[str, str, date, int, int]]:
        await manage.upgrade_database(settings)
        await manage.seed_database(
            settings, SeedSize(farms=20, buyers=5, transactions=3000, days=300)
        )
        return await manage.daily_demand(settings)

    rows = asyncio.run(prepare())
    frame = from_daily_aggregate(rows)
    assert frame["series"].str.count(":").eq(1).all()  # crop:region
    assert abs(frame["demand_kg"].sum() - sum(r[3] for r in rows) / 1000) < 1e-6

    candidate = build_candidate("demand", out_dir=tmp_path / "run", data=frame, tiny=True)
    assert candidate.metrics["mase"] > 0
    assert "overall" in candidate.table
