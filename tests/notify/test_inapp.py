"""In the app, with the API's own relay running: a purchase reaches the farm's owner as a
notification; pages, the unread filter and marking read are the caller's alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pamtalk.db.models import Role
from tests.conftest import Actor, create_farm
from tests.notify.test_webhooks import buy


@pytest.fixture
def relay_interval() -> float:
    return 0.05


async def notifications(client: httpx.AsyncClient, user: Actor, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/v1/notifications{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def arrived(client: httpx.AsyncClient, user: Actor, count: int) -> list[dict[str, Any]]:
    """The user's notifications once ``count`` have arrived (the relay runs on its own)."""
    while True:
        items: list[dict[str, Any]] = (await notifications(client, user, "?limit=200"))["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.05)


async def test_a_purchase_reaches_the_farm_owner(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    owner, buyer = actors[Role.farmer], actors[Role.buyer]
    farm = await create_farm(client, owner)
    bought = [await buy(client, farm, buyer) for _ in range(3)]

    items = await arrived(client, owner, 3)
    assert [n["type"] for n in items] == ["transaction.created"] * 3
    assert [n["payload"]["id"] for n in items] == [tx["id"] for tx in reversed(bought)]
    assert all(n["read_at"] is None for n in items)
    assert (await notifications(client, buyer))["items"] == []

    first = await notifications(client, owner, "?limit=2")
    assert first["next_cursor"]
    second = await notifications(client, owner, f"?limit=2&cursor={first['next_cursor']}")
    assert [n["id"] for n in first["items"] + second["items"]] == [n["id"] for n in items]
    assert second["next_cursor"] is None

    newest = items[0]["id"]
    assert (
        await client.post(f"/v1/notifications/{newest}/read", headers=buyer.headers)
    ).status_code == 404
    read = await client.post(f"/v1/notifications/{newest}/read", headers=owner.headers)
    assert read.status_code == 200 and read.json()["read_at"]
    again = await client.post(f"/v1/notifications/{newest}/read", headers=owner.headers)
    assert again.json()["read_at"] == read.json()["read_at"]
    unread = (await notifications(client, owner, "?unread=true"))["items"]
    assert [n["id"] for n in unread] == [n["id"] for n in items[1:]]
    mixed = await client.get(
        f"/v1/notifications?unread=true&cursor={first['next_cursor']}", headers=owner.headers
    )
    assert mixed.status_code == 400  # a cursor belongs to the list it came from
