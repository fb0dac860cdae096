"""Demand forecasts: ``POST /v1/predictions/demand``. Cached an hour per model version."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from fastapi import APIRouter, Response
from sqlalchemy import select

from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, PredictorDep, SettingsDep
from pamtalk.api.schemas.predictions import DemandForecast, DemandRequest
from pamtalk.db.models import DemandDaily
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import InvalidInput
from pamtalk.models.contract import DEMAND_LOOKBACK
from pamtalk.models.demand.features import daily_history
from pamtalk.serving import predictions

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post("/demand", response_model=DemandForecast)
async def forecast_demand(
    body: DemandRequest,
    user: CurrentUser,
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> Response:
    today = utcnow().astimezone(KST).date()
    as_of = body.as_of or today - timedelta(days=1)
    if as_of > today:
        raise InvalidInput(f"as_of {as_of} is in the future (today is {today} in Asia/Seoul)")
    history = (
        np.array([[d.quantity_kg, d.price_krw_per_kg] for d in body.history], dtype=np.float32)
        if body.history is not None
        else None
    )

    async def load_history() -> np.ndarray:
        first = as_of - timedelta(days=DEMAND_LOOKBACK - 1)
        rows = await db.execute(
            select(DemandDaily.day, DemandDaily.quantity_g, DemandDaily.value_krw).where(
                DemandDaily.crop == body.crop,
                DemandDaily.region == body.region,
                DemandDaily.day.between(first, as_of),
            )
        )
        past = daily_history(rows, as_of)
        await db.commit()  # release the connection while the model works
        return past

    content = await predictions.forecast_demand(
        predictor,
        cache,
        settings.prediction_ttl,
        crop=body.crop,
        region=body.region,
        as_of=as_of,
        horizon=body.horizon_days,
        history=history,
        load_history=load_history,
        key=str(user.id),
    )
    return Response(content, media_type="application/json")
