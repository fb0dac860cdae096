"""At least once, never lost: a relay killed mid-batch (while publishing, or while sending)
loses no event, and what it sends again carries the same event id."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk.db.models import DeliveryStatus, Notification, OutboxEvent, Role, WebhookDelivery
from pamtalk.notify import delivery, relay
from tests.conftest import Actor, create_farm
from tests.notify.conftest import Clock, Receiver, drive, register
from tests.notify.test_webhooks import buy


async def purchases(
    client: httpx.AsyncClient, actors: dict[Role, Actor], n: int
) -> list[dict[str, Any]]:
    farm = await create_farm(client, actors[Role.farmer])
    return [await buy(client, farm, actors[Role.buyer]) for _ in range(n)]


async def test_publishing_killed_mid_batch_publishes_everything_once_later(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await purchases(client, actors, 6)
    fan_out, calls = relay._fan_out, 0

    async def killed_at_the_fourth(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise asyncio.CancelledError  # the worker stops here, mid-batch
        await fan_out(*args)

    monkeypatch.setattr(relay, "_fan_out", killed_at_the_fourth)
    sessions = app.state.pamtalk.sessions
    with pytest.raises(asyncio.CancelledError):
        await relay.publish(sessions)
    async with sessions.write() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
        unpublished = OutboxEvent.published_at.is_(None)
        assert await session.scalar(select(func.count()).where(unpublished)) == 6

    monkeypatch.setattr(relay, "_fan_out", fan_out)
    assert await relay.publish_all(sessions) == 6
    assert await relay.publish_all(sessions) == 0
    async with sessions.write() as session:
        events = set(await session.scalars(select(OutboxEvent.id)))
        notes = list(await session.scalars(select(Notification)))
    assert sorted(n.event_id for n in notes) == sorted(events)
    assert {n.user_id for n in notes} == {actors[Role.farmer].id}


async def test_delivery_killed_mid_batch_loses_nothing(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    await register(client, farmer, receiver.url, ["transaction.created"])
    bought = await purchases(client, actors, 10)
    state = app.state.pamtalk
    await relay.publish_all(state.sessions)

    receiver.hold_at = 4  # received, never answered: the sender is killed waiting
    async with delivery.Sender(state.settings) as sender:
        sending = asyncio.create_task(delivery.deliver_due(state.sessions, sender))
        await asyncio.to_thread(receiver.held.wait)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    receiver.release.set()
    held = receiver.requests[3].event["id"]

    later = Clock()
    later.advance(delivery.LEASE)  # the killed sender's claims have run out
    assert await drive(app, later) >= 1

    seen = Counter(r.event["id"] for r in receiver.requests)
    for request in receiver.requests:
        assert request.headers["X-Pamtalk-Event-Id"] == request.event["id"]
    assert {r.event["data"]["id"] for r in receiver.requests} == {tx["id"] for tx in bought}
    assert len(seen) == 10  # every event, none lost
    assert seen[held] == 2  # the one in flight when the sender died: sent again, same id
    async with state.sessions.write() as session:
        statuses = list(await session.scalars(select(WebhookDelivery.status)))
    assert statuses == [DeliveryStatus.delivered] * 10


async def test_a_sender_slower_than_its_lease_loses_the_delivery(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    """Sender A hangs past its lease; sender B claims the delivery and delivers it. A's late
    answer is not recorded over B's: one attempt counted, two requests with one event id."""
    await register(client, actors[Role.farmer], receiver.url, ["transaction.created"])
    await purchases(client, actors, 1)
    state = app.state.pamtalk
    await relay.publish_all(state.sessions)

    receiver.hold_at = 1
    async with delivery.Sender(state.settings) as a, delivery.Sender(state.settings) as b:
        slow = asyncio.create_task(delivery.deliver_due(state.sessions, a))
        await asyncio.to_thread(receiver.held.wait)
        later = Clock()
        later.advance(delivery.LEASE)
        assert await delivery.deliver_due(state.sessions, b, later) == 1
        receiver.release.set()
        assert await slow == 1
    async with state.sessions.write() as session:
        row = (await session.scalars(select(WebhookDelivery))).one()
    assert row.status == DeliveryStatus.delivered and row.attempts == 1
    assert [r.event["id"] for r in receiver.requests] == [row.event_id] * 2


async def test_prune_keeps_what_is_pending_or_recent(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    await register(client, farmer, receiver.url, ["transaction.created"])
    await purchases(client, actors, 2)
    sessions = app.state.pamtalk.sessions
    await drive(app)  # both published, notified and delivered
    await purchases(client, actors, 1)  # one more, never published
    async with sessions.write() as session:
        note = (await session.scalars(select(Notification).limit(1))).one()
    read = await client.post(f"/v1/notifications/{note.id}/read", headers=farmer.headers)
    assert read.status_code == 200

    async def counts() -> list[int]:
        async with sessions.write() as session:
            tables = (OutboxEvent, WebhookDelivery, Notification)
            return [
                int(await session.scalar(select(func.count()).select_from(t)) or 0) for t in tables
            ]

    clock = Clock()
    assert await relay.prune(sessions, clock) == 0
    clock.advance(relay.KEEP_EVENTS + timedelta(minutes=1))
    assert await relay.prune(sessions, clock) == 2 and await counts() == [1, 2, 2]
    clock.advance(relay.KEEP_READ)
    assert await relay.prune(sessions, clock) == 3  # two deliveries, the read notification
    assert await counts() == [1, 0, 1]  # the unpublished event, the unread notification
