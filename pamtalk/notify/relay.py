"""The relay: fans unpublished outbox events out to in-app notifications and webhook
deliveries, then marks them published, all in one transaction per batch. A relay killed
mid-batch commits nothing of it, and the next run publishes the same events (same ids);
notifications and deliveries are unique per (recipient, event), so nothing is doubled.

In each API worker, ``run`` publishes and delivers about every second (on PostgreSQL the
workers' batches skip each other's locked rows). With PAMTALK_CELERY_BROKER_URL set it
publishes to the ``notification_events`` queue instead (``publish_to_queue``): an event is
marked published only once the broker has confirmed its message, and a worker
(pamtalk.notify.tasks) fans it out and delivers it; retries that come due are sent to the
workers as sweeps (``SWEEP_TASK``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk import queues
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
SWEEP_EVERY = 5  # relay rounds between sweeps sent to the workers (with a broker)
EVENT_TASK = "pamtalk.notify.event"  # routed to notification_events
SWEEP_TASK = "pamtalk.notify.deliver_due"
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
    async with sessions.write() as session:
        pending = await _unpublished(session)
        moment = now()
        for event in pending:
            await _fan_out(session, event, moment)
        # Marked last: a relay stopped before this commit leaves them all unpublished.
        await _mark_published(session, pending, moment)
        await session.commit()
        return len(pending)


async def publish_to_queue(
    sessions: SessionFactory, publisher: queues.Publisher, now: Callable[[], datetime] = utcnow
) -> int:
    """Send one batch of unpublished events to the workers, oldest first; how many. They
    are marked published after the broker has taken every message, in the transaction that
    holds their rows: a broker that refuses one (BrokerUnavailable) leaves the batch
    unpublished, to be sent again, same ids, next time."""
    async with sessions.write() as session:
        pending = await _unpublished(session)
        await publisher.send(EVENT_TASK, [[event.id] for event in pending])
        await _mark_published(session, pending, now())
        await session.commit()
        return len(pending)


async def fan_out_event(
    sessions: SessionFactory, event_id: str, now: Callable[[], datetime] = utcnow
) -> bool:
    """A worker's part of publishing: the event's notifications and deliveries, in one
    transaction; doing it again adds nothing. False if there is no such event."""
    async with sessions.write() as session:
        event = await session.get(OutboxEvent, event_id)
        if event is None:
            return False
        await _fan_out(session, event, now())
        await session.commit()
        return True


async def any_due(sessions: SessionFactory, now: Callable[[], datetime] = utcnow) -> bool:
    """Whether a delivery is due: a retry, or one whose sender died past its lease."""
    async with sessions.read() as session:
        found = await session.scalar(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at <= now(),
            )
            .limit(1)
        )
        return found is not None


async def _unpublished(session: AsyncSession) -> list[OutboxEvent]:
    return list(
        await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )


async def _mark_published(
    session: AsyncSession, events: list[OutboxEvent], moment: datetime
) -> None:
    if events:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([e.id for e in events]))
            .values(published_at=moment)
        )


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
    async with sessions.write() as session:
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
    """The relay of an API worker: model events into the outbox while it runs
    (``subscribe``/``unsubscribe``: pamtalk.registry.events'), and every ``INTERVAL_S``
    publish what is new and deliver what is due, here or (with a broker) through the
    workers; now and then prune what is old."""
    subscriber = outbox.model_event_subscriber(sessions)
    subscribe(subscriber)
    try:
        if settings.celery_broker_url is None:
            async with delivery.Sender(settings) as sender:
                await _rounds(sessions, _in_process(sessions, sender))
        else:
            await _rounds(sessions, _through_queue(sessions, queues.publisher(settings)))
    finally:
        unsubscribe(subscriber)


Round = Callable[[int], Awaitable[None]]


def _in_process(sessions: SessionFactory, sender: delivery.Sender) -> Round:
    async def step(_: int) -> None:
        await publish_all(sessions)
        await delivery.deliver_due(sessions, sender)

    return step


def _through_queue(sessions: SessionFactory, publisher: queues.Publisher) -> Round:
    async def step(count: int) -> None:
        while await publish_to_queue(sessions, publisher):
            pass
        if count % SWEEP_EVERY == 0 and await any_due(sessions):
            # Expires unconsumed: sweeps do not pile up while no worker runs.
            await publisher.send(SWEEP_TASK, [[]], expires=SWEEP_EVERY * INTERVAL_S * 2)

    return step


async def _rounds(sessions: SessionFactory, work: Round) -> None:
    count = 0
    while True:
        await asyncio.sleep(INTERVAL_S)
        count += 1
        try:
            await work(count)
            if count % PRUNE_EVERY == 0:
                await prune(sessions)
        except queues.BrokerUnavailable as exc:  # the events wait in the outbox
            log.warning("notification relay: %s; retrying in %s s", exc, INTERVAL_S)
        except Exception:  # a database hiccup: try again next time
            log.exception("notification relay failed; retrying in %s s", INTERVAL_S)
