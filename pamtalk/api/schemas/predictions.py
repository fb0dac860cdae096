"""Demand forecast and ESG score requests and answers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from pamtalk.api.schemas.common import CropSlug, Id, RegionSlug, Schema
from pamtalk.api.schemas.farms import Area, Certifications, Crops, Practices
from pamtalk.models.contract import DEMAND_HORIZON, DEMAND_LOOKBACK


class HistoryDay(Schema):
    quantity_kg: StrictFloat = Field(ge=0, le=1e9, description="kg sold that day", examples=[230.5])
    price_krw_per_kg: StrictFloat = Field(
        default=0, ge=0, le=1e8, description="mean price that day; 0 = unknown", examples=[3000]
    )


class DemandRequest(Schema):
    """A forecast of one crop in one region. Without ``history`` the platform's own daily
    demand is used; send ``history`` to forecast from your own figures."""

    crop: CropSlug
    region: RegionSlug
    horizon_days: StrictInt = Field(default=DEMAND_HORIZON, ge=1, le=DEMAND_HORIZON)
    as_of: date | None = Field(
        default=None,
        description="last day of history; default yesterday (Asia/Seoul)",
        ge=date(2000, 1, 1),
        le=date(2099, 12, 1),
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
    model: str = Field(description="registered model name", examples=["pamtalk-demand"])
    version: str = Field(description="the model version that answered", examples=["1"])
    crop: str
    region: str
    as_of: date = Field(description="last day of the history the forecast stands on")
    unit: str = Field(description="of p10/p50/p90", examples=["kg"])
    history_days: int = Field(description="days of history the model reads", examples=[56])
    history_days_with_data: int = Field(
        description="of those, days with any demand; 0 means the forecast had nothing to go on"
    )
    history_source: str = Field(
        description="'platform' (the platform's daily demand), 'request' (the history sent), "
        "or 'none' (no platform demand for this crop and region in the window: the forecast "
        "is the model's guess for an unknown series, not a forecast from data)",
        examples=["platform"],
    )
    forecast: list[ForecastDay] = Field(
        description="one entry per day after as_of: 10th, 50th (median) and 90th percentile"
    )
    cached: bool = Field(
        description="served from the prediction cache (an hour per model version and input)"
    )


class EsgRequest(Schema):
    """A stored farm (``farm_id``) or a profile to score without storing."""

    farm_id: Id | None = None
    practices: Practices | None = None
    crops: Crops | None = None
    area_m2: Area | None = None
    organic: StrictBool | None = None
    certifications: Certifications | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EsgRequest:
        profile = (self.practices, self.crops, self.area_m2, self.organic, self.certifications)
        no_profile = all(v is None for v in profile)
        if self.farm_id is None and no_profile:
            raise ValueError(
                "send farm_id (a stored farm) or a practice profile (practices, crops, "
                "area_m2, organic, certifications); the body had neither"
            )
        if self.farm_id is not None and not no_profile:
            raise ValueError("send either farm_id or a profile (practices, crops, ...), not both")
        return self


class EsgScores(Schema):
    environmental: Quantiles
    social: Quantiles
    governance: Quantiles
    overall: Quantiles


class Methodology(Schema):
    """The audit: what was reported, scored by the published methodology, 0-100 points."""

    environmental: float
    social: float
    governance: float
    overall: float = Field(
        description="the audited overall score: only reported practices earn points"
    )
    grade: str = Field(description="the grade of the audited overall score")
    breakdown: dict[str, Any] = Field(
        description="points per component with its rule and inputs, what was missing, and "
        "the emission factors used (with their sources)"
    )


class EsgScore(Schema):
    """Two overall figures answer two questions. ``scores.overall`` (and ``grade``) is the
    model's estimate of where the farm would score if it reported everything, learnt from
    farms that did; ``methodology.overall`` is the audit of what the farm reported, where
    every missing input earns nothing. With a sparse profile (low ``reported_share``) the
    audit is far lower than the estimate; reporting more closes the gap."""

    model: str = Field(examples=["pamtalk-esg"])
    version: str = Field(description="the model version that answered", examples=["1"])
    scores: EsgScores = Field(
        description="the model's estimate for the complete profile, 0-100 points per pillar "
        "(p10/p50/p90: the range the score of a farm like this falls in)"
    )
    reported_share: float = Field(
        description="share of the model's inputs the farm reported (0-1)", examples=[0.35]
    )
    grade: str = Field(description="the grade of scores.overall.p50, the model's estimate")
    methodology: Methodology = Field(
        description="the audit score of what was reported (missing inputs earn no points)"
    )
    farm_id: int | None = Field(default=None, description="the stored farm scored, if any")
    assessment_id: int | None = Field(
        default=None, description="the recorded assessment (stored farms only)"
    )
    stored: bool = Field(
        default=False,
        description="whether the score was recorded as an assessment: only for a stored "
        "farm scored by its owner, an admin or an analyst",
    )
    cached: bool = Field(
        description="the model's part was served from the prediction cache (an hour per "
        "model version and profile); the audit is always computed"
    )


# Request examples for /docs (FastAPI's openapi_examples): what a caller really sends.
DEMAND_EXAMPLES: dict[str, Any] = {
    "platform": {
        "summary": "from the platform's own demand",
        "value": {"crop": "cabbage", "region": "jeju", "horizon_days": 7},
    },
    "history": {
        "summary": "from your own 56 days of sales",
        "value": {
            "crop": "tangerine",
            "region": "jeju",
            "horizon_days": 7,
            "history": [
                {"quantity_kg": 180 + 40 * (day % 7 < 5), "price_krw_per_kg": 3200}
                for day in range(DEMAND_LOOKBACK)
            ],
        },
    },
}
ESG_EXAMPLES: dict[str, Any] = {
    "farm": {"summary": "a stored farm (recorded)", "value": {"farm_id": 6}},
    "profile": {
        "summary": "a practice profile (not stored)",
        "value": {
            "practices": {
                "nitrogen_kg_per_ha": 120,
                "renewable_share": 0.3,
                "workers": 3,
                "fair_wage": True,
            },
            "crops": ["rice"],
            "area_m2": 12000,
            "organic": False,
        },
    },
}
