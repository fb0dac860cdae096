"""Model management as users do it (REST, CLI, rollouts): the registry operations of
promote.py, each recorded in the audit trail (events.publish) with who did it and why.

    await actions.promote(client, sessions, "pamtalk-esg", "4", actor="user:7 (analyst)")
"""

from __future__ import annotations

import asyncio

from mlflow import MlflowClient

from pamtalk.db.models import ModelEvent
from pamtalk.db.session import SessionFactory
from pamtalk.errors import Conflict
from pamtalk.registry import events, promote


def _champion(client: MlflowClient, name: str) -> str | None:
    found = promote.by_alias(client, name, promote.CHAMPION)
    return str(found.version) if found is not None else None


async def promote_version(
    client: MlflowClient,
    sessions: SessionFactory,
    name: str,
    version: str,
    actor: str,
    reason: str | None = None,
) -> ModelEvent:
    """Move the champion alias to ``version`` once the gates pass (PromotionRefused names
    the gate); Conflict if it is the champion already."""
    promote.contract_of(name)
    await asyncio.to_thread(promote.version_of, client, name, version)  # NotFound first
    before = await asyncio.to_thread(_champion, client, name)
    if before == str(version):
        raise Conflict(f"{name} version {version} is already the champion")
    await asyncio.to_thread(promote.promote, client, name, version)
    return await events.publish(
        sessions,
        client,
        model=name,
        action="promote",
        actor=actor,
        from_version=before,
        to_version=str(version),
        reason=reason,
    )


async def rollback(
    client: MlflowClient, sessions: SessionFactory, name: str, actor: str, reason: str | None = None
) -> ModelEvent:
    """Move the champion alias back to the previous champion."""
    before = await asyncio.to_thread(_champion, client, name)
    after = await asyncio.to_thread(promote.rollback, client, name)
    return await events.publish(
        sessions,
        client,
        model=name,
        action="rollback",
        actor=actor,
        from_version=before,
        to_version=after,
        reason=reason,
    )


async def canary(
    client: MlflowClient,
    sessions: SessionFactory,
    name: str,
    version: str,
    percent: int,
    shadow: bool,
    actor: str,
    reason: str | None = None,
) -> ModelEvent:
    """Make ``version`` the challenger for ``percent`` % of traffic (or shadowing it)."""
    await asyncio.to_thread(promote.canary, client, name, version, percent, shadow)
    return await events.publish(
        sessions,
        client,
        model=name,
        action="canary",
        actor=actor,
        from_version=await asyncio.to_thread(_champion, client, name),
        to_version=str(version),
        reason=reason,
        details={"percent": percent, "mode": "shadow" if shadow else "split"},
    )


async def end_canary(
    client: MlflowClient, sessions: SessionFactory, name: str, actor: str, reason: str | None = None
) -> ModelEvent:
    """The champion answers everything again; the challenger alias goes."""
    plan = await asyncio.to_thread(promote.rollout, client, name)
    await asyncio.to_thread(promote.end_canary, client, name)
    return await events.publish(
        sessions,
        client,
        model=name,
        action="canary_end",
        actor=actor,
        from_version=plan.challenger,
        to_version=plan.champion,
        reason=reason,
    )
