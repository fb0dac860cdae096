"""Notifications through the ``notification_events`` queue (RabbitMQ) and real ``pamtalk
worker`` processes, on PostgreSQL: the relay marks an event published only once the broker
has it, a worker fans it out and delivers it signed, and a worker killed mid-delivery loses
nothing (its message comes back to the next worker, which sends the event again with the
same id)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk import queues
from pamtalk.db.models import DeliveryStatus, Notification, OutboxEvent, Role, WebhookDelivery
from pamtalk.notify import relay
from pamtalk.settings import Settings
from tests.conftest import Actor, Stack, create_farm
from tests.notify.conftest import Receiver, readme_recipe, register
from tests.notify.test_webhooks import buy
from tests.queue_workers import (
    QueueWorkers,
    broker_settings,
    eventually,
    purge,
    queue_workers,
)

pytestmark = pytest.mark.parametrize("stack", ["services"], indirect=True)


@pytest.fixture
def broker_on() -> bool:
    """Whether the app itself is configured with the broker (its relay sends to the queue)."""
    return False


@pytest.fixture
def settings(settings: Settings, broker_on: bool) -> Settings:
    return broker_settings(settings) if broker_on else settings


@pytest.fixture(scope="module")
def workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueWorkers]:
    """One worker for the module's tests (the stack's database is the same for all)."""
    with queue_workers(stack.database_url, tmp_path_factory.mktemp("workers")) as started:
        yield started


@pytest.fixture
def publisher(settings: Settings) -> queues.Publisher:
    return queues.publisher(broker_settings(settings))


async def sales(
    client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver, n: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The farmer's webhook on the receiver, and ``n`` purchases from its farm."""
    hook = await register(client, actors[Role.farmer], receiver.url, ["transaction.created"])
    farm = await create_farm(client, actors[Role.farmer])
    return hook, [await buy(client, farm, actors[Role.buyer]) for _ in range(n)]


async def delivered(app: FastAPI) -> int:
    async with app.state.pamtalk.sessions.write() as session:
        done = WebhookDelivery.status == DeliveryStatus.delivered
        return int(await session.scalar(select(func.count()).where(done)) or 0)


async def test_events_sent_to_the_queue_are_delivered_by_a_worker(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    receiver: Receiver,
    workers: QueueWorkers,
    publisher: queues.Publisher,
) -> None:
    hook, bought = await sales(client, actors, receiver, 4)
    await workers.ready()
    sessions = app.state.pamtalk.sessions
    assert await relay.publish_to_queue(sessions, publisher) == 4
    assert await relay.publish_to_queue(sessions, publisher) == 0  # marked published

    async def all_delivered() -> bool:
        return await delivered(app) == 4

    await eventually(all_delivered, workers, "4 deliveries")
    verify = readme_recipe()
    events = [
        verify(hook["secret"], r.headers["X-Pamtalk-Signature"], r.body) for r in receiver.requests
    ]
    assert sorted(e["data"]["id"] for e in events) == sorted(tx["id"] for tx in bought)
    async with sessions.write() as session:
        ids = set(await session.scalars(select(OutboxEvent.id)))
        notes = list(await session.scalars(select(Notification.event_id)))
    assert {e["id"] for e in events} == ids and sorted(notes) == sorted(ids)  # in-app too


async def test_a_broker_that_is_down_leaves_events_unpublished(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    await sales(client, actors, receiver, 2)
    down = Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:1//")
    with pytest.raises(queues.BrokerUnavailable):
        await relay.publish_to_queue(app.state.pamtalk.sessions, queues.Publisher(down))
    async with app.state.pamtalk.sessions.write() as session:
        unpublished = OutboxEvent.published_at.is_(None)
        assert await session.scalar(select(func.count()).where(unpublished)) == 2


@pytest.mark.parametrize(("broker_on", "relay_interval"), [(True, 0.2)])
async def test_the_api_relays_through_the_queue(
    settings: Settings,
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    receiver: Receiver,
    workers: QueueWorkers,
) -> None:
    """The app itself, configured with the broker: its relay sends, the worker delivers."""
    assert settings.celery_broker_url is not None
    await workers.ready()
    hook, bought = await sales(client, actors, receiver, 3)

    async def all_delivered() -> bool:
        return await delivered(app) == 3

    await eventually(all_delivered, workers, "3 deliveries")
    verify = readme_recipe()
    got = [
        verify(hook["secret"], r.headers["X-Pamtalk-Signature"], r.body) for r in receiver.requests
    ]
    assert sorted(e["data"]["id"] for e in got) == sorted(tx["id"] for tx in bought)


async def test_a_worker_killed_mid_delivery_loses_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    receiver: Receiver,
    workers: QueueWorkers,
    publisher: queues.Publisher,
) -> None:
    _, bought = await sales(client, actors, receiver, 6)
    receiver.hold_at = 3  # received, never answered: the worker is killed waiting
    first = await workers.ready()
    purge()  # no stray sweep of an earlier test's: the third request is an event's task
    assert await relay.publish_to_queue(app.state.pamtalk.sessions, publisher) == 6
    await eventually(lambda: _is_set(receiver), workers, "the third request")
    first.kill()
    held = receiver.requests[2].event["id"]
    receiver.release.set()

    await workers.ready()  # the broker gives the killed worker's message to this one

    async def all_delivered() -> bool:
        return await delivered(app) == 6

    await eventually(all_delivered, workers, "6 deliveries after the kill")
    seen = Counter(r.event["id"] for r in receiver.requests)
    for request in receiver.requests:
        assert request.headers["X-Pamtalk-Event-Id"] == request.event["id"]
    assert {r.event["data"]["id"] for r in receiver.requests} == {tx["id"] for tx in bought}
    assert len(seen) == 6  # every event, none lost
    assert seen[held] == 2  # the one in flight when the worker died: again, same id


async def _is_set(receiver: Receiver) -> bool:
    return receiver.held.is_set()


async def test_due_deliveries_are_swept_to_a_worker(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    receiver: Receiver,
    workers: QueueWorkers,
    publisher: queues.Publisher,
) -> None:
    """Deliveries that come due later (retries, a sender's lease run out) reach the workers
    as sweeps: the relay's round sends one when any delivery is due."""
    await sales(client, actors, receiver, 2)
    sessions = app.state.pamtalk.sessions
    assert await relay.publish_all(sessions) == 2  # fanned out here, not delivered
    assert await relay.any_due(sessions)
    await workers.ready()
    await relay._through_queue(sessions, publisher)(relay.SWEEP_EVERY)

    async def all_delivered() -> bool:
        return await delivered(app) == 2

    await eventually(all_delivered, workers, "2 swept deliveries")
    assert not await relay.any_due(sessions)
