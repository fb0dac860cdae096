"""Background jobs: the nightly scoring, or one heavy prediction, and their progress."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from pamtalk.api.schemas.common import CropSlug, Day, Id, RegionSlug, Schema
from pamtalk.db.models import JobStatus


class NightlyJob(Schema):
    kind: Literal["nightly"]
    run_date: Day | None = Field(default=None, description="default today (Asia/Seoul)")


class DemandJob(Schema):
    kind: Literal["demand"]
    crop: CropSlug
    region: RegionSlug


class EsgJob(Schema):
    kind: Literal["esg"]
    farm_id: Id


JobCreate = Annotated[NightlyJob | DemandJob | EsgJob, Field(discriminator="kind")]


class JobPublic(Schema):
    id: int
    kind: str
    run_date: date | None
    status: JobStatus
    versions: dict[str, str]
    chunks_done: int
    chunks_total: int
    rows_written: int
    rows_per_second: float | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
