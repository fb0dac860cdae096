"""Model management: registry versions, canary, rollouts and their audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from pamtalk.api.schemas.common import Schema


class VersionPublic(Schema):
    version: str
    aliases: list[str]
    run_id: str | None
    metrics: dict[str, float] = Field(description="the training run's MLflow metrics")
    int8: bool = Field(description="a static int8 file passed its gate: served on CPU")
    created_ms: int


class Loaded(Schema):
    version: str
    role: str
    precision: str
    device: str


class ModelPublic(Schema):
    name: str
    champion: str | None
    challenger: str | None
    canary_percent: int
    canary_mode: str
    loaded: list[Loaded] = Field(description="versions this API process serves")
    versions: list[VersionPublic]


class GateResult(Schema):
    gate: str
    ok: bool | None = Field(description="null: the gate cannot judge it (says why)")
    reason: str | None


class VersionDetail(VersionPublic):
    gates: list[GateResult] = Field(
        description="each promotion gate's verdict against the current champion, now"
    )


class PromoteRequest(Schema):
    version: str = Field(min_length=1, max_length=32, examples=["4"])
    reason: str | None = Field(default=None, max_length=500)


class RollbackRequest(Schema):
    reason: str | None = Field(default=None, max_length=500)


class CanaryRequest(Schema):
    version: str = Field(min_length=1, max_length=32, examples=["4"])
    percent: StrictInt = Field(ge=0, le=100, examples=[5])
    shadow: StrictBool = Field(
        default=False, description="score a copy; the champion still answers"
    )
    reason: str | None = Field(default=None, max_length=500)


class GatesRequest(Schema):
    max_error_rate: StrictFloat = Field(default=0.001, ge=0, le=1)
    max_p99_ratio: StrictFloat = Field(default=1.2, gt=0, le=1000)
    max_shadow_divergence: StrictFloat | None = Field(default=None, ge=0, le=1e6)


class RolloutRequest(Schema):
    version: str = Field(min_length=1, max_length=32, examples=["4"])
    steps: list[StrictInt] = Field(default=[5, 25, 50, 100], min_length=1, max_length=20)
    step_seconds: StrictFloat = Field(default=600, gt=0, le=7 * 24 * 3600)
    min_requests: StrictInt = Field(default=200, ge=1, le=1_000_000_000)
    gates: GatesRequest = GatesRequest()
    shadow: StrictBool = Field(default=False, description="each step shadows instead of answering")


class RolloutPublic(Schema):
    id: int
    model: str
    version: str
    champion: str
    state: str
    steps: list[int]
    step: int = Field(description="index into steps")
    percent: int
    step_started_at: datetime
    step_seconds: float
    min_requests: int
    gates: dict[str, Any]
    readings: list[dict[str, Any]] = Field(
        description="per step: its share, start, and the gate readings (challenger against "
        "champion on the same live traffic, summed over every API worker)"
    )
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class EventPublic(Schema):
    id: int
    model: str
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str | None
    details: dict[str, Any]
    created_at: datetime
