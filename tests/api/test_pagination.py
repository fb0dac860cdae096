"""Cursors are bound to the filters of the list they paginate (pamtalk.api.pagination); the
farm list's own case is in test_farms.test_a_cursor_keeps_its_filters."""

from __future__ import annotations

import httpx
import pytest

from pamtalk.api import pagination
from pamtalk.db.models import FarmStatus, Role
from pamtalk.errors import BadRequest
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm


def test_round_trip_and_normalisation() -> None:
    pages = pagination.Pages(Settings(env="test").signing_key("cursor"))
    filters = {"region": "jeju", "crop": None, "status": FarmStatus.active}
    cursor = pages.encode(41, filters=filters)
    # absent and None are the same filter; the order of the filters does not matter
    same = {"status": FarmStatus.active, "region": "jeju"}
    assert pages.decode(cursor, (pagination.row_id,), filters=same) == (41,)
    with pytest.raises(BadRequest, match="same filters"):
        pages.decode(cursor, (pagination.row_id,), filters={"region": "seoul", "status": "active"})
    with pytest.raises(BadRequest):
        pages.decode(cursor, (pagination.row_id,))
    for bad in ("not-a-cursor", pages.encode("x", filters=filters), "W10", cursor[:-2]):
        with pytest.raises(BadRequest, match="not valid"):
            pages.decode(bad, (pagination.row_id,), filters=filters)


async def test_transactions_cursor_keeps_its_filters(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer], crops=["tangerine", "carrot"])
    admin = actors[Role.admin]
    for crop in ("tangerine", "carrot", "tangerine", "carrot", "tangerine"):
        body = {"farm_id": farm["id"], "crop": crop, "quantity_kg": "1", "unit_price_krw": 100}
        created = await client.post(
            "/v1/transactions", json=body, headers=actors[Role.buyer].headers
        )
        assert created.status_code == 201, created.text
    first = await client.get("/v1/transactions?crop=tangerine&limit=2", headers=admin.headers)
    cursor = first.json()["next_cursor"]
    second = await client.get(
        f"/v1/transactions?crop=tangerine&limit=2&cursor={cursor}", headers=admin.headers
    )
    assert [t["crop"] for t in second.json()["items"]] == ["tangerine"]
    other = await client.get(f"/v1/transactions?cursor={cursor}", headers=admin.headers)
    assert other.status_code == 400, other.text
