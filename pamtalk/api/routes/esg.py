"""ESG scores: ``POST /v1/esg/score`` for a stored farm (recorded as an assessment) or for a
practice profile sent in the request (not stored)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, PredictorDep, SettingsDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.predictions import EsgRequest, EsgScore
from pamtalk.db.models import EsgAssessment, Farm, FarmStatus
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import NotFound
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
    stored: Farm | None = None
    if body.farm_id is not None:
        stored = await db.get(Farm, body.farm_id)
        if stored is None or stored.status == FarmStatus.deleted:
            raise NotFound(f"farm {body.farm_id} not found")
        farm: dict[str, Any] = {
            "crops": stored.crops,
            "area_m2": stored.area_m2,
            "organic": stored.organic,
            "certifications": stored.certifications,
            "practices": stored.practices,
        }
        await db.commit()  # release the connection while the model works
    else:
        farm = body.model_dump(exclude={"farm_id"}, exclude_none=True)
    result = await predictions.score_esg(
        predictor, cache, settings.prediction_ttl, farm=farm, key=str(user.id)
    )
    result |= {"farm_id": None, "assessment_id": None}
    if stored is not None:
        p50 = {pillar: q["p50"] for pillar, q in result["scores"].items()}
        assessment = EsgAssessment(
            farm_id=stored.id,
            run_date=utcnow().astimezone(KST).date(),
            **p50,
            grade=result["grade"],
            breakdown={"model": result["scores"], "methodology": result["methodology"]},
            model_name=result["model"],
            model_version=result["version"],
        )
        db.add(assessment)
        await db.commit()
        result |= {"farm_id": stored.id, "assessment_id": assessment.id}
    return JSONResponse(result)
