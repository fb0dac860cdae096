"""Farm schemas, including the practice data the ESG model reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from pamtalk.api.schemas.common import CropSlug, Id, LongText, Name, RegionSlug, Schema, one_of
from pamtalk.db.models import FarmStatus

CERTIFICATIONS = {
    "organic": "유기농산물 (organic)",
    "pesticide_free": "무농약농산물 (pesticide-free)",
    "gap": "농산물우수관리 GAP",
    "low_carbon": "저탄소 농축산물 (low-carbon)",
    "haccp": "HACCP",
    "global_gap": "GLOBALG.A.P.",
}
Certification = Annotated[
    str,
    StringConstraints(max_length=32),
    one_of("certification", CERTIFICATIONS),
    WithJsonSchema({"type": "string", "enum": list(CERTIFICATIONS)}),
]
Share = Annotated[StrictFloat, Field(ge=0, le=1)]


class Practices(Schema):
    """Farming practice data; every field is optional because farms report what they know
    (the ESG model scores incomplete profiles with a wider uncertainty band)."""

    # Environment
    nitrogen_kg_per_ha: StrictFloat | None = Field(default=None, ge=0, le=1000)
    pesticide_kg_per_ha: StrictFloat | None = Field(default=None, ge=0, le=200)
    diesel_l_per_year: StrictFloat | None = Field(default=None, ge=0, le=1_000_000)
    electricity_kwh_per_year: StrictFloat | None = Field(default=None, ge=0, le=100_000_000)
    renewable_share: Share | None = None
    water_m3_per_year: StrictFloat | None = Field(default=None, ge=0, le=100_000_000)
    yield_kg_per_year: StrictFloat | None = Field(default=None, ge=0, le=1_000_000_000)
    cover_crops: StrictBool | None = None
    reduced_tillage: StrictBool | None = None
    crop_rotation: StrictBool | None = None
    integrated_pest_management: StrictBool | None = None
    biodiversity_area_share: Share | None = None
    # Social
    workers: StrictInt | None = Field(default=None, ge=0, le=100_000)
    fair_wage: StrictBool | None = None
    safety_training: StrictBool | None = None
    training_hours_per_worker: StrictFloat | None = Field(default=None, ge=0, le=2000)
    local_employment_share: Share | None = None
    accidents_per_year: StrictInt | None = Field(default=None, ge=0, le=10_000)
    # Governance
    record_keeping: StrictBool | None = None
    traceability: StrictBool | None = None
    transparency_reports: StrictBool | None = None


Crops = Annotated[list[CropSlug], Field(min_length=1, max_length=30)]
Certifications = Annotated[list[Certification], Field(max_length=len(CERTIFICATIONS))]
# Mainland Korea and its islands (Jeju to Dokdo): a coordinate outside is a mistake.
Latitude = Annotated[StrictFloat, Field(ge=33.0, le=38.7)]
Longitude = Annotated[StrictFloat, Field(ge=124.5, le=132.0)]
Area = Annotated[StrictInt, Field(gt=0, le=100_000_000)]  # m², up to 10,000 ha


class _Unique(Schema):
    @field_validator("crops", "certifications", check_fields=False)
    @classmethod
    def _dedupe(cls, values: list[str] | None) -> list[str] | None:
        return sorted(set(values)) if values is not None else None


class FarmCreate(_Unique):
    name: Name
    region: RegionSlug
    address: LongText | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    area_m2: Area
    crops: Crops
    organic: StrictBool = False
    certifications: Certifications = Field(default_factory=list)
    practices: Practices = Field(default_factory=Practices)
    owner_id: Id | None = Field(default=None, description="admin only: create for this farmer")


class FarmUpdate(_Unique):
    name: Name | None = None
    region: RegionSlug | None = None
    address: LongText | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    area_m2: Area | None = None
    crops: Crops | None = None
    organic: StrictBool | None = None
    certifications: Certifications | None = None
    practices: Practices | None = None
    status: FarmStatus | None = Field(default=None, description="active or suspended")

    @field_validator("status")
    @classmethod
    def _no_delete_by_update(cls, status: FarmStatus | None) -> FarmStatus | None:
        if status is FarmStatus.deleted:
            raise ValueError("use DELETE /v1/farms/{id} to delete a farm")
        return status


class FarmPublic(Schema):
    id: int
    owner_id: int
    name: str
    region: str
    address: str | None
    latitude: float | None
    longitude: float | None
    area_m2: int
    crops: list[str]
    organic: bool
    certifications: list[str]
    practices: dict[str, Any]
    status: FarmStatus
    created_at: datetime
    updated_at: datetime
    visibility: Literal["full", "public"] = Field(
        default="full",
        description="'public': address, latitude, longitude (null here) and the labour "
        "practices are left out; only the owner, admins and analysts see them ('full')",
    )


class FarmPage(Schema):
    items: list[FarmPublic]
    next_cursor: str | None
