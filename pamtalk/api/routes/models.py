"""Model management for admins and analysts (data scientists): the registry's versions,
promote, rollback, canary, automatic progressive rollouts and the audit trail. The CLI's
gates apply: a refusal is a 409 naming the gate."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from pamtalk.api.auth import Principal
from pamtalk.api.deps import ModelManager, PathId, PredictorDep, StateDep
from pamtalk.api.schemas.common import MAX_ID
from pamtalk.api.schemas.models import (
    CanaryRequest,
    EventPublic,
    ModelPublic,
    PromoteRequest,
    RollbackRequest,
    RolloutPublic,
    RolloutRequest,
    VersionDetail,
)
from pamtalk.db.models import Rollout
from pamtalk.models.contract import CONTRACTS
from pamtalk.registry import actions, catalog, events, promote, rollouts
from pamtalk.serving.service import PredictorService

router = APIRouter(prefix="/v1/models", tags=["models"])

ModelName = Annotated[str, Path(max_length=64, examples=["pamtalk-esg"])]
Version = Annotated[str, Path(max_length=32, examples=["4"])]


def _actor(user: Principal) -> str:
    return f"user:{user.id} ({user.role})"


async def _model(predictor: PredictorService, name: str) -> dict[str, Any]:
    client = await predictor.registry()
    plan = await asyncio.to_thread(promote.rollout, client, name)
    found = await asyncio.to_thread(catalog.versions, client, name)
    return {
        "name": name,
        "champion": plan.champion,
        "challenger": plan.challenger,
        "canary_percent": plan.percent,
        "canary_mode": plan.mode,
        "loaded": [s for s in predictor.served() if s.model == name],
        "versions": found,
    }


@router.get("", response_model=list[ModelPublic])
async def list_models(user: ModelManager, predictor: PredictorDep) -> list[dict[str, Any]]:
    """Each model: its versions with their MLflow metrics and aliases, the canary, and what
    this process has loaded (precision, device)."""
    return [await _model(predictor, name) for name in CONTRACTS]


@router.get("/{name}", response_model=ModelPublic)
async def get_model(name: ModelName, user: ModelManager, predictor: PredictorDep) -> Any:
    promote.contract_of(name)
    return await _model(predictor, name)


@router.get("/{name}/versions/{version}", response_model=VersionDetail)
async def get_version(
    name: ModelName, version: Version, user: ModelManager, predictor: PredictorDep
) -> Any:
    """The version's metrics, run id, aliases, and each promotion gate's verdict now."""
    client = await predictor.registry()
    info = await asyncio.to_thread(catalog.describe, client, name, version)
    gates = await asyncio.to_thread(catalog.gate_results, client, name, version)
    return {**dataclasses.asdict(info), "gates": gates}


@router.post("/{name}/promote", response_model=EventPublic)
async def promote_version(
    name: ModelName, body: PromoteRequest, user: ModelManager, state: StateDep
) -> Any:
    """Move the champion alias to the version once every gate passes (409 names the gate)."""
    client = await state.predictor.registry()
    return await actions.promote_version(
        client, state.sessions, name, body.version, _actor(user), body.reason
    )


@router.post("/{name}/rollback", response_model=EventPublic)
async def rollback(
    name: ModelName, user: ModelManager, state: StateDep, body: RollbackRequest | None = None
) -> Any:
    """Move the champion alias back to the previous champion."""
    client = await state.predictor.registry()
    reason = body.reason if body else None
    return await actions.rollback(client, state.sessions, name, _actor(user), reason)


@router.put("/{name}/canary", response_model=EventPublic)
async def set_canary(
    name: ModelName, body: CanaryRequest, user: ModelManager, state: StateDep
) -> Any:
    """The version takes ``percent`` % of traffic, sticky per caller (or shadows it)."""
    client = await state.predictor.registry()
    return await actions.canary(
        client,
        state.sessions,
        name,
        body.version,
        body.percent,
        body.shadow,
        _actor(user),
        body.reason,
    )


@router.delete("/{name}/canary", response_model=EventPublic)
async def end_canary(name: ModelName, user: ModelManager, state: StateDep) -> Any:
    """The champion answers everything again."""
    client = await state.predictor.registry()
    promote.contract_of(name)
    return await actions.end_canary(client, state.sessions, name, _actor(user))


def _public(rollout: Rollout) -> dict[str, Any]:
    return {
        **{c.name: getattr(rollout, c.name) for c in Rollout.__table__.columns},
        "percent": rollout.steps[rollout.step],
    }


@router.post("/{name}/rollouts", response_model=RolloutPublic, status_code=status.HTTP_201_CREATED)
async def start_rollout(
    name: ModelName, body: RolloutRequest, user: ModelManager, state: StateDep, response: Response
) -> Any:
    """Start an automatic progressive rollout: each step's share of traffic goes to the
    version until ``step_seconds`` have passed and it has served ``min_requests``, with every
    gate holding on live figures; a failing gate rolls back at once; the last step promotes."""
    client = await state.predictor.registry()
    plan = rollouts.Plan(
        steps=body.steps,
        step_seconds=body.step_seconds,
        min_requests=body.min_requests,
        gates=rollouts.Gates(**body.gates.model_dump()),
        shadow=body.shadow,
    )
    started = await rollouts.start(client, state.sessions, name, body.version, plan, _actor(user))
    response.headers["Location"] = f"/v1/models/{name}/rollouts/{started.id}"
    return _public(started)


@router.get("/{name}/rollouts", response_model=list[RolloutPublic])
async def list_rollouts(name: ModelName, user: ModelManager, state: StateDep) -> Any:
    promote.contract_of(name)
    return [_public(r) for r in await rollouts.listed(state.sessions, name)]


@router.get("/{name}/rollouts/{rollout_id}", response_model=RolloutPublic)
async def get_rollout(
    name: ModelName, rollout_id: PathId, user: ModelManager, state: StateDep
) -> Any:
    """State, current step, and per step the gate readings."""
    return _public(await rollouts.get(state.sessions, name, rollout_id))


@router.post("/{name}/rollouts/{rollout_id}/{command}", response_model=RolloutPublic)
async def control_rollout(
    name: ModelName,
    rollout_id: PathId,
    command: Annotated[str, Path(pattern="^(pause|resume|abort)$")],
    user: ModelManager,
    state: StateDep,
) -> Any:
    """``pause`` (hold at this step), ``resume`` (carry on, a fresh window) or ``abort``
    (the canary ends, the champion stays)."""
    client = await state.predictor.registry()
    found = await rollouts.get(state.sessions, name, rollout_id)
    control = {"pause": rollouts.pause, "resume": rollouts.resume, "abort": rollouts.abort}
    await control[command](client, state.sessions, found, _actor(user))
    return _public(await rollouts.get(state.sessions, name, rollout_id))


@router.get("/{name}/events", response_model=list[EventPublic])
async def list_events(
    name: ModelName,
    user: ModelManager,
    state: StateDep,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="events older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The audit trail, newest first: who promoted, rolled back, changed the canary, and
    each rollout step, with the reason."""
    promote.contract_of(name)
    async with state.sessions.read() as session:
        return await events.history(session, name, before, limit)
