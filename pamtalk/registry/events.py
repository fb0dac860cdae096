"""The audit trail of model management. Every promote, rollback, canary change and rollout
step goes through ``publish``: a row in ``model_events``, a tag on the MLflow version it
concerns, and each subscriber (notifications, later) called with the event.

    subscribe(on_event)                      # async def on_event(event: ModelEvent) -> None
    await publish(sessions, client, model="pamtalk-esg", action="promote",
                  from_version="3", to_version="4", actor="user:7 (analyst)")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mlflow import MlflowClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import ModelEvent
from pamtalk.db.session import SessionFactory

log = logging.getLogger(__name__)

Subscriber = Callable[[ModelEvent], Awaitable[None]]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Call ``subscriber`` with every event published in this process from now on."""
    _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    _subscribers.remove(subscriber)


async def publish(
    sessions: SessionFactory,
    client: MlflowClient | None,
    *,
    model: str,
    action: str,
    actor: str,
    from_version: str | None = None,
    to_version: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ModelEvent:
    async with sessions.write() as session:
        event = ModelEvent(
            model=model,
            action=action,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason[:2000] if reason else None,
            details=details or {},
        )
        session.add(event)
        await session.commit()
    version = to_version or from_version
    if client is not None and version is not None:
        note = f"{action} by {actor} at {event.created_at:%Y-%m-%dT%H:%M:%SZ}"
        try:
            await asyncio.to_thread(
                client.set_model_version_tag,
                model,
                version,
                f"pamtalk.event.{event.id}",
                f"{note}: {reason}" if reason else note,
            )
        except Exception as exc:  # the database row is the record; the tag is a courtesy
            log.warning("could not tag %s v%s with event %s: %s", model, version, event.id, exc)
    for subscriber in list(_subscribers):
        try:
            await subscriber(event)
        except Exception:
            log.exception("a model event subscriber failed on event %s", event.id)
    return event


async def history(
    session: AsyncSession, model: str, before: int | None = None, limit: int = 50
) -> list[ModelEvent]:
    """The model's events, newest first (``before`` an event id, for the next page)."""
    query = select(ModelEvent).where(ModelEvent.model == model)
    if before is not None:
        query = query.where(ModelEvent.id < before)
    found = await session.scalars(query.order_by(ModelEvent.id.desc()).limit(limit))
    return list(found)
