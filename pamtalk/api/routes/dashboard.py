"""The dashboard: farms by region and status, recent volume, top crops. Cached 60 s.

Volumes come from the daily demand aggregate, so the cost does not grow with the number of
transactions.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, SettingsDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.dashboard import CropVolume, Dashboard, FarmCounts, Volume
from pamtalk.cache import DASHBOARD_NS, cached
from pamtalk.db.models import DemandDaily, Farm, FarmStatus
from pamtalk.db.types import utcnow
from pamtalk.domain import KST

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

WINDOWS = (7, 30)
TOP_CROPS = 10


@router.get("", response_model=Dashboard)
async def dashboard(db: DbDep, cache: CacheDep, settings: SettingsDep, _: CurrentUser) -> Response:
    """Platform totals: farms by region and status, transactions of the last 7 and 30 days,
    the top crops. Cached 60 s."""

    async def build() -> dict[str, object]:
        now = utcnow()
        today = now.astimezone(KST).date()

        by_region: dict[str, dict[str, int]] = {}
        total = 0
        farm_counts = await db.execute(
            select(Farm.region, Farm.status, func.count())
            .where(Farm.status != FarmStatus.deleted)
            .group_by(Farm.region, Farm.status)
        )
        for region, farm_status, count in farm_counts:
            by_region.setdefault(region, {})[farm_status] = count
            total += count

        volume = []
        for days in WINDOWS:
            since = today - timedelta(days=days - 1)
            count, grams, value = (
                await db.execute(
                    select(
                        func.coalesce(func.sum(DemandDaily.transactions), 0),
                        func.coalesce(func.sum(DemandDaily.quantity_g), 0),
                        func.coalesce(func.sum(DemandDaily.value_krw), 0),
                    ).where(DemandDaily.day >= since)
                )
            ).one()
            volume.append(
                Volume(
                    days=days,
                    since=since,
                    transactions=int(count),
                    quantity_kg=Decimal(int(grams)) / 1000,
                    value_krw=int(value),
                )
            )

        since = today - timedelta(days=WINDOWS[-1] - 1)
        value_sum = func.sum(DemandDaily.value_krw)
        top = await db.execute(
            select(
                DemandDaily.crop,
                func.sum(DemandDaily.transactions),
                func.sum(DemandDaily.quantity_g),
                value_sum,
            )
            .where(DemandDaily.day >= since)
            .group_by(DemandDaily.crop)
            .order_by(value_sum.desc())
            .limit(TOP_CROPS)
        )
        top_crops = [
            CropVolume(
                crop=crop, transactions=int(n), quantity_kg=Decimal(int(g)) / 1000, value_krw=int(v)
            )
            for crop, n, g, v in top
        ]
        return Dashboard(
            farms=FarmCounts(total=total, by_region=by_region),
            volume=volume,
            top_crops=top_crops,
            generated_at=now,
        ).model_dump(mode="json")

    # No invalidation: the whole dashboard may lag its TTL (the seed's 60 s).
    return JSONResponse(await cached(cache, DASHBOARD_NS, "summary", settings.dashboard_ttl, build))
