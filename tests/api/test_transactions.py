from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk.db.models import DemandDaily, Role, Transaction
from tests.conftest import Actor, ActorFactory, create_farm


def tx_body(farm: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "farm_id": farm["id"],
        "crop": "tangerine",
        "quantity_kg": "12.345",
        "unit_price_krw": 2500,
        **overrides,
    }


async def count_rows(app: FastAPI) -> int:
    async with app.state.pamtalk.sessions.write() as session:
        return int(await session.scalar(select(func.count()).select_from(Transaction)) or 0)


async def test_server_computes_total_and_updates_daily_demand(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    buyer = actors[Role.buyer]
    response = await client.post(
        "/v1/transactions", json=tx_body(farm, total_krw=1), headers=buyer.headers
    )
    assert response.status_code == 422  # totals are the server's, not the client's
    response = await client.post("/v1/transactions", json=tx_body(farm), headers=buyer.headers)
    assert response.status_code == 201, response.text
    tx = response.json()
    assert tx["quantity_g"] == 12345
    assert tx["quantity_kg"] == "12.345"
    assert tx["total_krw"] == 30863  # 12.345 kg x 2,500 = 30,862.5, rounded half up
    assert tx["region"] == "jeju" and tx["buyer_id"] == buyer.id

    await client.post("/v1/transactions", json=tx_body(farm, quantity_kg=1), headers=buyer.headers)
    async with app.state.pamtalk.sessions.write() as session:
        rows = list(await session.scalars(select(DemandDaily)))
    assert len(rows) == 1
    assert (rows[0].crop, rows[0].region) == ("tangerine", "jeju")
    assert rows[0].quantity_g == 13345
    assert rows[0].value_krw == 30863 + 2500
    assert rows[0].transactions == 2


async def test_rejects_a_crop_the_farm_does_not_grow(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    response = await client.post(
        "/v1/transactions", json=tx_body(farm, crop="rice"), headers=actors[Role.buyer].headers
    )
    assert response.status_code == 422
    assert "does not grow rice" in response.json()["error"]["message"]


async def test_concurrent_retries_make_one_transaction(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    headers = {**actors[Role.buyer].headers, "Idempotency-Key": "order-2026-0001"}

    responses = await asyncio.gather(
        *(client.post("/v1/transactions", json=tx_body(farm), headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1  # byte-identical bodies
    assert await count_rows(app) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 19

    later = await client.post("/v1/transactions", json=tx_body(farm), headers=headers)
    assert later.content == responses[0].content

    different = await client.post(
        "/v1/transactions", json=tx_body(farm, quantity_kg="3"), headers=headers
    )
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "conflict"
    assert await count_rows(app) == 1

    async with app.state.pamtalk.sessions.write() as session:
        demand = await session.scalar(select(DemandDaily.transactions))
    assert demand == 1  # the aggregate counted it once


async def test_idempotency_keys_are_per_buyer(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], new_actor: ActorFactory
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    other = await new_actor(Role.buyer)
    for buyer in (actors[Role.buyer], other):
        response = await client.post(
            "/v1/transactions",
            json=tx_body(farm),
            headers={**buyer.headers, "Idempotency-Key": "same"},
        )
        assert response.status_code == 201
    assert await count_rows(app) == 2


async def test_list_visibility_filters_and_pages(
    client: httpx.AsyncClient, actors: dict[Role, Actor], new_actor: ActorFactory
) -> None:
    farmer, buyer = actors[Role.farmer], actors[Role.buyer]
    other_farmer, other_buyer = await new_actor(Role.farmer), await new_actor(Role.buyer)
    mine = await create_farm(client, farmer)
    theirs = await create_farm(client, other_farmer, crops=["tangerine", "carrot"])
    made = []
    for farm, who, crop in [
        (mine, buyer, "tangerine"),
        (theirs, buyer, "carrot"),
        (theirs, other_buyer, "tangerine"),
        (mine, other_buyer, "cabbage"),
    ]:
        r = await client.post(
            "/v1/transactions", json=tx_body(farm, crop=crop), headers=who.headers
        )
        assert r.status_code == 201
        made.append(r.json()["id"])

    async def ids(actor: Actor, query: str = "") -> list[int]:
        r = await client.get(f"/v1/transactions?{query}", headers=actor.headers)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    newest_first = made[::-1]
    assert await ids(actors[Role.analyst]) == newest_first
    assert await ids(buyer) == [made[1], made[0]]
    assert await ids(farmer) == [made[3], made[0]]
    assert await ids(actors[Role.admin], f"farm_id={theirs['id']}") == [made[2], made[1]]
    assert await ids(actors[Role.admin], "crop=tangerine") == [made[2], made[0]]
    assert await ids(actors[Role.admin], f"buyer_id={other_buyer.id}") == [made[3], made[2]]
    assert await ids(actors[Role.admin], "since=2000-01-01T00:00:00Z&until=2001-01-01") == []
    forbidden = await client.get(
        f"/v1/transactions?buyer_id={other_buyer.id}", headers=buyer.headers
    )
    assert forbidden.status_code == 403

    pages, cursor = [], None
    while True:
        query = "limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = (
            await client.get(f"/v1/transactions?{query}", headers=actors[Role.admin].headers)
        ).json()
        pages += [t["id"] for t in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == newest_first

    one = await client.get(f"/v1/transactions/{made[2]}", headers=buyer.headers)
    assert one.status_code == 404  # another buyer's purchase is invisible
    one = await client.get(f"/v1/transactions/{made[2]}", headers=other_farmer.headers)
    assert one.status_code == 200


async def test_time_range_must_be_ordered(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    r = await client.get(
        "/v1/transactions?since=2026-01-02&until=2026-01-01", headers=actors[Role.admin].headers
    )
    assert r.status_code == 422
