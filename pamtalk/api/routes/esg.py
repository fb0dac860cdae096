"""ESG scores: ``POST /v1/esg/score`` for a stored farm (recorded as an assessment) or for a
practice profile sent in the request (not stored)."""

from __future__ import annotations

from fastapi import APIRouter

from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, PredictorDep, SettingsDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.predictions import EsgRequest, EsgScore
from pamtalk.serving import predictions

router = APIRouter(prefix="/v1/esg", tags=["esg"])


@router.post("/score", response_model=EsgScore)
async def score(
    body: EsgRequest,
    user: CurrentUser,
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> JSONResponse:
    ttl, key = settings.prediction_ttl, str(user.id)
    if body.farm_id is not None:
        result = await predictions.score_farm(
            predictor, cache, ttl, db, farm_id=body.farm_id, key=key
        )
    else:
        profile = body.model_dump(exclude={"farm_id"}, exclude_none=True)
        result = await predictions.score_esg(predictor, cache, ttl, profile=profile, key=key)
        result |= {"farm_id": None, "assessment_id": None}
    return JSONResponse(result)
