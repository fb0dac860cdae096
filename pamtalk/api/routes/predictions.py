"""Demand forecasts: ``POST /v1/predictions/demand``. Cached an hour per model version."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Response

from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, PredictorDep, SettingsDep
from pamtalk.api.schemas.predictions import DEMAND_EXAMPLES, DemandForecast, DemandRequest
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import InvalidInput
from pamtalk.serving import predictions

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post("/demand", response_model=DemandForecast)
async def forecast_demand(
    body: Annotated[DemandRequest, Body(openapi_examples=DEMAND_EXAMPLES)],
    user: CurrentUser,
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> Response:
    """Daily p10/p50/p90 demand in kg for the ``horizon_days`` after ``as_of`` (default
    yesterday in Asia/Seoul), from the platform's daily demand for the crop and region or
    from the ``history`` sent. Any authenticated user; cached an hour per model version and
    input (``cached`` says so). ``history_source: "none"`` flags a series without data."""
    today = utcnow().astimezone(KST).date()
    as_of = body.as_of or today - timedelta(days=1)
    if as_of > today:
        raise InvalidInput(f"as_of {as_of} is in the future (today is {today} in Asia/Seoul)")
    history = (
        np.array([[d.quantity_kg, d.price_krw_per_kg] for d in body.history], dtype=np.float32)
        if body.history is not None
        else None
    )
    content = await predictions.forecast_demand(
        predictor,
        cache,
        settings.prediction_ttl,
        db,
        crop=body.crop,
        region=body.region,
        as_of=as_of,
        horizon=body.horizon_days,
        history=history,
        key=str(user.id),
    )
    return Response(content, media_type="application/json")
