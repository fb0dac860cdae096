"""The transactional outbox: an event row written in the same database transaction as the
change it reports, so the event exists exactly when the change does.

    outbox.add(session, "transaction.created", payload, users=(farm.owner_id,))
    await session.commit()  # the change and its event, together

Model events are written after their own commit (pamtalk.registry.events); ``on_model_event``
records them in a transaction of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import ModelEvent, OutboxEvent, Role
from pamtalk.db.session import SessionFactory

EVENT_TYPES = (
    "transaction.created",
    "batch.completed",
    "model.promoted",
    "model.rolled_back",
    "farm.suspended",
)
STAFF = (Role.admin, Role.analyst)
MODEL_ACTIONS = {
    "promote": "model.promoted",
    "rollback": "model.rolled_back",
    "rollout_rolled_back": "model.rolled_back",
}
Subscriber = Callable[[ModelEvent], Awaitable[None]]
_MODEL_EVENTS = uuid.UUID("6f1c2d4e-8a7b-4c3d-9e5f-0a1b2c3d4e5f")


def add(
    session: AsyncSession,
    type: str,
    payload: dict[str, Any],
    *,
    users: tuple[int, ...] = (),
    roles: tuple[Role, ...] = (),
) -> OutboxEvent:
    """Add an event to the session's transaction (it is written when the session commits)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = OutboxEvent.new(type, payload, users=users, roles=roles)
    session.add(event)
    return event


def model_event_subscriber(sessions: SessionFactory) -> Subscriber:
    """A pamtalk.registry.events subscriber writing promotions and rollbacks to the outbox."""

    async def on_model_event(event: ModelEvent) -> None:
        type = MODEL_ACTIONS.get(event.action)
        if type is None:
            return
        payload = {
            "model": event.model,
            "action": event.action,
            "from_version": event.from_version,
            "to_version": event.to_version,
            "actor": event.actor,
            "reason": event.reason,
            "model_event_id": event.id,
        }
        async with sessions.write() as session:
            # The id derives from the model event's, so the event is one event however often
            # this runs for it.
            event_id = str(uuid.uuid5(_MODEL_EVENTS, str(event.id)))
            if await session.get(OutboxEvent, event_id) is None:
                session.add(OutboxEvent.new(type, payload, roles=STAFF, event_id=event_id))
                await session.commit()

    return on_model_event
