"""Bad input gets a 4xx in the one error shape, never a 500, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk.db.models import Farm, Role, Transaction
from tests.conftest import Actor, create_farm, farm_body

HUGE = "가" * 100_000

BAD_FARMS: list[tuple[str, dict[str, Any]]] = [
    ("wrong type", {"area_m2": "big"}),
    ("negative area", {"area_m2": -5}),
    ("absurd area", {"area_m2": 10**15}),
    ("unknown crop", {"crops": ["durian"]}),
    ("no crops", {"crops": []}),
    ("unknown region", {"region": "osaka"}),
    ("huge name", {"name": HUGE[:5000]}),
    ("NUL in name", {"name": "farm\x00"}),
    ("NaN latitude", {"latitude": float("nan")}),
    ("latitude outside Korea", {"latitude": 51.5}),
    ("share above 1", {"practices": {"renewable_share": 1.5}}),
    ("unknown practice", {"practices": {"magic": True}}),
    ("unknown field", {"total_krw": 5}),
    ("unknown certification", {"certifications": ["iso9001"]}),
]


async def farm_count(app: FastAPI) -> int:
    async with app.state.pamtalk.sessions.write() as session:
        return int(await session.scalar(select(func.count()).select_from(Farm)) or 0)


async def post_raw(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], actor: Actor
) -> httpx.Response:
    """json.dumps writes NaN and Infinity as the bare tokens a sloppy client would send."""
    return await client.post(
        path,
        content=json.dumps(body),
        headers={**actor.headers, "content-type": "application/json"},
    )


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"code", "message", "request_id"}
    assert response.headers["x-request-id"] == error["request_id"]
    return error


@pytest.mark.parametrize(("case", "change"), BAD_FARMS, ids=[c for c, _ in BAD_FARMS])
async def test_bad_farm_input(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    case: str,
    change: dict[str, Any],
) -> None:
    response = await post_raw(client, "/v1/farms", farm_body(**change), actors[Role.farmer])
    error = assert_error_shape(response, 422)
    assert error["code"] == "invalid_input"
    assert error["details"]
    assert await farm_count(app) == 0


BAD_TRANSACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("negative quantity", {"quantity_kg": -1}),
    ("zero quantity", {"quantity_kg": 0}),
    ("absurd quantity", {"quantity_kg": 10**12}),
    ("sub-gram quantity", {"quantity_kg": "0.0001"}),
    ("NaN quantity", {"quantity_kg": "NaN"}),
    ("infinite price", {"unit_price_krw": float("inf")}),
    ("NaN price", {"unit_price_krw": float("nan")}),
    ("float price", {"unit_price_krw": 10.5}),
    ("string farm id", {"farm_id": "one"}),
    ("overflowing farm id", {"farm_id": 2**70}),
    ("unknown crop", {"crop": "unobtainium"}),
]


@pytest.mark.parametrize(("case", "change"), BAD_TRANSACTIONS, ids=[c for c, _ in BAD_TRANSACTIONS])
async def test_bad_transaction_input(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    case: str,
    change: dict[str, Any],
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    body = {
        "farm_id": farm["id"],
        "crop": "tangerine",
        "quantity_kg": 1,
        "unit_price_krw": 1000,
        **change,
    }
    response = await post_raw(client, "/v1/transactions", body, actors[Role.buyer])
    assert_error_shape(response, 422)
    async with app.state.pamtalk.sessions.write() as session:
        assert await session.scalar(select(func.count()).select_from(Transaction)) == 0


async def test_raw_nan_and_malformed_json(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    headers = {**actors[Role.farmer].headers, "content-type": "application/json"}
    nan = await client.post("/v1/farms", content=b'{"name": "x", "latitude": NaN}', headers=headers)
    assert 400 <= nan.status_code < 500
    assert "error" in nan.json()
    broken = await client.post("/v1/farms", content=b'{"name": ', headers=headers)
    assert 400 <= broken.status_code < 500
    assert "error" in broken.json()


async def test_oversized_body_is_413(client: httpx.AsyncClient, actors: dict[Role, Actor]) -> None:
    response = await client.post(
        "/v1/farms", json=farm_body(address=HUGE * 10), headers=actors[Role.farmer].headers
    )
    error = assert_error_shape(response, 413)
    assert error["code"] == "payload_too_large"


async def test_absurd_path_and_query_values(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    headers = actors[Role.admin].headers
    for url in (
        "/v1/farms/99999999999999999999999",
        "/v1/farms/-1",
        "/v1/farms/abc",
        "/v1/farms?limit=100000",
        "/v1/transactions?since=not-a-date",
        "/v1/farms?cursor=" + "A" * 500,
    ):
        response = await client.get(url, headers=headers)
        assert_error_shape(response, 422)
    assert_error_shape(await client.get("/v1/nowhere", headers=headers), 404)
    assert_error_shape(await client.put("/v1/farms", headers=headers), 405)
