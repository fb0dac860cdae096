"""The relay: fans unpublished outbox events out to in-app notifications and webhook
deliveries, then marks them published, all in one transaction per batch. A relay killed
mid-batch commits nothing of it, and the next run publishes the same events (same ids);
notifications and deliveries are unique per (recipient, event), so nothing is doubled.

In each API worker, ``run`` publishes and delivers about every second (on PostgreSQL the
workers' batches skip each other's locked rows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import (
    DeliveryStatus,
    Notification,
    OutboxEvent,
    Role,
    User,
    Webhook,
    WebhookDelivery,
)
from pamtalk.db.session import SessionFactory
from pamtalk.db.types import utcnow
from pamtalk.db.upsert import insert_for
from pamtalk.notify import delivery, outbox
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

BATCH = 100
INTERVAL_S = 1.0
PRUNE_EVERY = 3600  # relay rounds between prunes
# Kept this long: published events (a redelivery needs none), finished deliveries (their
# history, GET /v1/webhooks/{id}/deliveries), read notifications.
KEEP_EVENTS = timedelta(days=7)
KEEP_DELIVERIES = timedelta(days=30)
KEEP_READ = timedelta(days=90)


def body(event: OutboxEvent) -> str:
    """The webhook body: the same bytes on every attempt."""
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        }
    ).decode()


async def recipients(session: AsyncSession, event: OutboxEvent) -> list[int]:
    users = [int(u) for u in event.audience.get("users", [])]
    roles = [Role(r) for r in event.audience.get("roles", [])]
    query = select(User.id).where(
        User.is_active.is_(True), or_(User.id.in_(users), User.role.in_(roles))
    )
    return list(await session.scalars(query.order_by(User.id)))


async def _fan_out(session: AsyncSession, event: OutboxEvent, now: datetime) -> None:
    users = await recipients(session, event)
    if not users:
        return
    notes = [
        {
            "user_id": user,
            "event_id": event.id,
            "type": event.type,
            "payload": event.payload,
            "created_at": event.created_at,
        }
        for user in users
    ]
    await session.execute(
        insert_for(session, Notification)
        .values(notes)
        .on_conflict_do_nothing(index_elements=["user_id", "event_id"])
    )
    hooks = await session.scalars(
        select(Webhook).where(Webhook.user_id.in_(users), Webhook.deleted_at.is_(None))
    )
    rows = [
        {
            "webhook_id": hook.id,
            "event_id": event.id,
            "event_type": event.type,
            "body": body(event),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for hook in hooks
        if event.type in hook.events
    ]
    if rows:
        await session.execute(
            insert_for(session, WebhookDelivery)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        )


async def publish(sessions: SessionFactory, now: Callable[[], datetime] = utcnow) -> int:
    """Publish one batch of unpublished events, oldest first; how many were published."""
    async with sessions() as session:
        pending = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        moment = now()
        for event in pending:
            await _fan_out(session, event, moment)
        if pending:
            # Marked last: a relay stopped before this commit leaves them all unpublished.
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e.id for e in pending]))
                .values(published_at=moment)
            )
        await session.commit()
        return len(pending)


async def publish_all(sessions: SessionFactory, now: Callable[[], datetime] = utcnow) -> int:
    total = 0
    while count := await publish(sessions, now):
        total += count
    return total


async def prune(sessions: SessionFactory, now: Callable[[], datetime] = utcnow) -> int:
    """Delete what is done and old (KEEP_*); how many rows went. Pending events and
    deliveries, and unread notifications, are never pruned."""
    moment = now()
    statements = [
        delete(OutboxEvent).where(OutboxEvent.published_at < moment - KEEP_EVENTS),
        delete(WebhookDelivery).where(
            WebhookDelivery.status != DeliveryStatus.pending,
            WebhookDelivery.finished_at < moment - KEEP_DELIVERIES,
        ),
        delete(Notification).where(Notification.read_at < moment - KEEP_READ),
    ]
    gone = 0
    async with sessions() as session:
        for statement in statements:
            result = await session.execute(statement.execution_options(synchronize_session=False))
            gone += result.rowcount  # type: ignore[attr-defined]
        await session.commit()
    return gone


async def run(
    sessions: SessionFactory,
    settings: Settings,
    subscribe: Callable[[Any], None],
    unsubscribe: Callable[[Any], None],
) -> None:
    """The in-process relay of an API worker: model events into the outbox while it runs
    (``subscribe``/``unsubscribe``: pamtalk.registry.events'), and every ``INTERVAL_S``
    publish what is new and deliver what is due (and now and then prune what is old)."""
    subscriber = outbox.model_event_subscriber(sessions)
    subscribe(subscriber)
    try:
        async with delivery.Sender(settings) as sender:
            rounds = 0
            while True:
                await asyncio.sleep(INTERVAL_S)
                rounds += 1
                try:
                    await publish_all(sessions)
                    await delivery.deliver_due(sessions, sender)
                    if rounds % PRUNE_EVERY == 0:
                        await prune(sessions)
                except Exception:  # a database hiccup: try again next time
                    log.exception("notification relay failed; retrying in %s s", INTERVAL_S)
    finally:
        unsubscribe(subscriber)
