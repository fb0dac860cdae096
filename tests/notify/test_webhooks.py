"""Webhooks: a real receiver on 127.0.0.1 gets signed deliveries that verify with README's
recipe; failures back off exponentially for 24 h and are then dead-lettered (a clock the test
controls); a deleted webhook gets nothing more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db.models import DeliveryStatus, Role, WebhookDelivery
from pamtalk.notify import delivery, relay
from tests.conftest import Actor, create_farm
from tests.notify.conftest import Clock, Receiver, drive, readme_recipe, register


async def buy(client: httpx.AsyncClient, farm: dict[str, Any], buyer: Actor) -> dict[str, Any]:
    body = {"farm_id": farm["id"], "crop": "tangerine", "quantity_kg": 2, "unit_price_krw": 3000}
    response = await client.post("/v1/transactions", json=body, headers=buyer.headers)
    assert response.status_code == 201, response.text
    tx: dict[str, Any] = response.json()
    return tx


async def deliveries(client: httpx.AsyncClient, actor: Actor, hook: dict[str, Any]) -> Any:
    response = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_delivery_verifies_with_the_readme_recipe(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer, buyer = actors[Role.farmer], actors[Role.buyer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    assert hook["secret"].startswith("whsec_") and hook["url"] == receiver.url
    listed = (await client.get("/v1/webhooks", headers=farmer.headers)).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert (await client.get("/v1/webhooks", headers=buyer.headers)).json() == []

    tx = await buy(client, await create_farm(client, farmer), buyer)
    assert await drive(app) == 1

    [got] = receiver.requests
    verify = readme_recipe()
    event = verify(hook["secret"], got.headers["X-Pamtalk-Signature"], got.body)
    assert event["type"] == "transaction.created" and event["data"]["id"] == tx["id"]
    assert got.headers["X-Pamtalk-Event-Id"] == event["id"]
    assert got.headers["X-Pamtalk-Event-Type"] == "transaction.created"
    with pytest.raises(ValueError, match="bad signature"):
        verify(hook["secret"], got.headers["X-Pamtalk-Signature"], got.body.replace(b"}", b" }"))
    with pytest.raises(ValueError, match="bad signature"):
        verify("whsec_other", got.headers["X-Pamtalk-Signature"], got.body)

    [row] = await deliveries(client, farmer, hook)
    assert row["event_id"] == event["id"] and row["status"] == "delivered"
    assert row["attempts"] == 1 and row["last_status"] == 200
    # the buyer is no audience of it, and cannot see the farmer's webhook
    other = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=buyer.headers)
    assert other.status_code == 404


async def test_backoff_then_dead_letter_after_24_hours(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    await buy(client, await create_farm(client, farmer), actors[Role.buyer])
    receiver.always = 500
    clock = Clock()
    start = clock()

    waits: list[timedelta] = []
    while True:
        assert await drive(app, clock) == 1
        async with app.state.pamtalk.sessions.write() as session:
            row = (await session.scalars(select(WebhookDelivery))).one()
        if row.status != DeliveryStatus.pending:
            break
        wait = row.next_attempt_at - clock()
        waits.append(wait)
        clock.advance(wait - timedelta(seconds=1))
        assert await drive(app, clock) == 0  # not due yet
        clock.advance(timedelta(seconds=1))

    assert row.status == DeliveryStatus.dead and row.last_status == 500
    assert clock() - start == timedelta(hours=24)  # the last try is at the deadline
    minute = timedelta(minutes=1)
    doubling = [timedelta(seconds=30), minute, 2 * minute, 4 * minute, 8 * minute, 16 * minute]
    assert waits[:8] == [*doubling, 32 * minute, 60 * minute]
    assert all(w == timedelta(hours=1) for w in waits[8:-1]) and waits[-1] <= timedelta(hours=1)
    assert row.attempts == len(waits) + 1 == len(receiver.requests)
    assert len({r.headers["X-Pamtalk-Event-Id"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1  # every retry: the same bytes

    [shown] = await deliveries(client, farmer, hook)
    assert shown["status"] == "dead" and shown["attempts"] == row.attempts
    assert await drive(app, clock) == 0


async def test_a_retry_that_succeeds(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    await buy(client, await create_farm(client, farmer), actors[Role.buyer])
    receiver.statuses.extend([503, 500])
    clock = Clock()
    for _ in range(3):
        assert await drive(app, clock) == 1
        clock.advance(delivery.MAX_RETRY)
    [row] = await deliveries(client, farmer, hook)
    assert row["status"] == "delivered" and row["attempts"] == 3
    assert [r.event["id"] for r in receiver.requests] == [row["event_id"]] * 3


async def test_a_deleted_webhook_gets_nothing_more(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer, buyer = actors[Role.farmer], actors[Role.buyer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    farm = await create_farm(client, farmer)
    await buy(client, farm, buyer)
    await relay.publish_all(app.state.pamtalk.sessions)  # a delivery pending
    deleted = await client.delete(f"/v1/webhooks/{hook['id']}", headers=buyer.headers)
    assert deleted.status_code == 404
    deleted = await client.delete(f"/v1/webhooks/{hook['id']}", headers=farmer.headers)
    assert deleted.status_code == 204
    await buy(client, farm, buyer)
    await drive(app)
    assert receiver.requests == []
    assert (await client.get("/v1/webhooks", headers=farmer.headers)).json() == []
    async with app.state.pamtalk.sessions.write() as session:
        [row] = (await session.scalars(select(WebhookDelivery))).all()
    assert row.status == DeliveryStatus.dead and row.last_error == "webhook deleted"
