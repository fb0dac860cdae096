"""Demand forecast and ESG score requests and answers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field, model_validator

from pamtalk.api.schemas.common import CropSlug, Id, RegionSlug, Schema
from pamtalk.api.schemas.farms import Area, Certifications, Crops, Practices
from pamtalk.models.contract import DEMAND_HORIZON, DEMAND_LOOKBACK


class HistoryDay(Schema):
    quantity_kg: float = Field(ge=0, le=1e9)
    price_krw_per_kg: float = Field(default=0, ge=0, le=1e8, description="0 = unknown")


class DemandRequest(Schema):
    crop: CropSlug
    region: RegionSlug
    horizon_days: int = Field(default=DEMAND_HORIZON, ge=1, le=DEMAND_HORIZON)
    as_of: date | None = Field(
        default=None,
        description="last day of history; default yesterday (Asia/Seoul)",
        ge=date(2000, 1, 1),
    )
    history: (
        Annotated[list[HistoryDay], Field(min_length=DEMAND_LOOKBACK, max_length=DEMAND_LOOKBACK)]
        | None
    ) = Field(
        default=None,
        description=f"the {DEMAND_LOOKBACK} days ending on as_of, oldest first; "
        "default: the platform's daily demand for this crop and region",
    )


class Quantiles(Schema):
    p10: float
    p50: float
    p90: float


class ForecastDay(Quantiles):
    date: date


class DemandForecast(Schema):
    model: str
    version: str
    crop: str
    region: str
    as_of: date
    unit: str
    history_days: int
    history_source: str
    forecast: list[ForecastDay]


class EsgRequest(Schema):
    """A stored farm (``farm_id``) or a profile to score without storing."""

    farm_id: Id | None = None
    practices: Practices | None = None
    crops: Crops | None = None
    area_m2: Area | None = None
    organic: bool | None = None
    certifications: Certifications | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EsgRequest:
        profile = (self.practices, self.crops, self.area_m2, self.organic, self.certifications)
        if (self.farm_id is None) == all(v is None for v in profile):
            raise ValueError("send either farm_id or a profile (practices, crops, ...), not both")
        return self


class EsgScores(Schema):
    environmental: Quantiles
    social: Quantiles
    governance: Quantiles
    overall: Quantiles


class Methodology(Schema):
    environmental: float
    social: float
    governance: float
    overall: float
    grade: str
    breakdown: dict[str, Any]


class EsgScore(Schema):
    model: str
    version: str
    scores: EsgScores = Field(description="the model's estimate of the complete profile")
    reported_share: float = Field(description="share of the model's inputs the farm reported")
    grade: str
    methodology: Methodology = Field(
        description="the audit score of what was reported (missing inputs earn no points)"
    )
    farm_id: int | None = None
    assessment_id: int | None = None
