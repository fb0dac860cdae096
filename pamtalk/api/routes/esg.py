"""ESG scores: ``POST /v1/esg/score`` for a stored farm (recorded as an assessment when the
caller is its owner, an admin or an analyst) or for a practice profile sent in the request
(not stored)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from pamtalk.api import farm_view
from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, PredictorDep, SettingsDep, WriteDbDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.predictions import ESG_EXAMPLES, EsgRequest, EsgScore
from pamtalk.serving import predictions

router = APIRouter(prefix="/v1/esg", tags=["esg"])


@router.post("/score", response_model=EsgScore)
async def score(
    body: Annotated[EsgRequest, Body(openapi_examples=ESG_EXAMPLES)],
    user: CurrentUser,
    db: DbDep,
    record: WriteDbDep,
    cache: CacheDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> JSONResponse:
    """The model's estimate (``scores``, ``grade``) beside the methodology's audit of what
    was reported (``methodology``): see the response schema for how the two overall figures
    differ. A stored farm's score is recorded as an assessment when you are its owner, an
    admin or an analyst (``stored``); others get it unrecorded, without the social pillar's
    breakdown (the farm's labour practices)."""
    ttl, key = settings.prediction_ttl, str(user.id)
    if body.farm_id is not None:
        result = await predictions.score_farm(
            predictor,
            cache,
            ttl,
            db,
            record,
            farm_id=body.farm_id,
            key=key,
            privileged=lambda owner_id: farm_view.sees_private(user, owner_id),
        )
    else:
        profile = body.model_dump(exclude={"farm_id"}, exclude_none=True)
        result = await predictions.score_esg(predictor, cache, ttl, profile=profile, key=key)
        result |= {"farm_id": None, "assessment_id": None, "stored": False}
    return JSONResponse(result)
