from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from pamtalk.db.models import Role
from tests.conftest import Actor, ActorFactory, create_farm, farm_body


def cache_count(result: str) -> float:
    return (
        REGISTRY.get_sample_value("cache_requests_total", {"namespace": "farms", "result": result})
        or 0.0
    )


async def test_create_read_update_delete(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    farm = await create_farm(client, farmer)
    assert farm["owner_id"] == farmer.id
    assert farm["crops"] == ["cabbage", "tangerine"]
    assert farm["status"] == "active"
    assert farm["practices"] == {"nitrogen_kg_per_ha": 20.5, "workers": 4, "fair_wage": True}

    got = await client.get(f"/v1/farms/{farm['id']}", headers=actors[Role.analyst].headers)
    assert got.status_code == 200
    assert got.json() == farm  # a buyer's view: tests/security/test_authorization.py

    patched = await client.patch(
        f"/v1/farms/{farm['id']}",
        json={
            "name": "새 이름",
            "crops": ["carrot"],
            "practices": {"workers": 6, "fair_wage": None},
        },
        headers=farmer.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "새 이름"
    assert body["crops"] == ["carrot"]
    # practices merge; null clears a value
    assert body["practices"] == {"nitrogen_kg_per_ha": 20.5, "workers": 6}

    deleted = await client.delete(f"/v1/farms/{farm['id']}", headers=farmer.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/farms/{farm['id']}", headers=farmer.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
    listed = await client.get("/v1/farms", headers=farmer.headers)
    assert listed.json()["items"] == []


async def test_admin_creates_for_a_farmer(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    farm = await create_farm(client, actors[Role.admin], owner_id=farmer.id)
    assert farm["owner_id"] == farmer.id
    not_farmer = await client.post(
        "/v1/farms",
        json=farm_body(owner_id=actors[Role.buyer].id),
        headers=actors[Role.admin].headers,
    )
    assert not_farmer.status_code == 422


async def test_list_filters_and_cursor_pagination(
    client: httpx.AsyncClient, new_actor: ActorFactory
) -> None:
    farmer = await new_actor(Role.farmer)
    other = await new_actor(Role.farmer)
    ids = []
    for i in range(7):
        farm = await create_farm(
            client,
            farmer if i % 2 else other,
            name=f"farm {i}",
            region="jeju" if i < 4 else "gangwon",
            crops=["tangerine"] if i < 4 else ["potato", "radish"],
            organic=i % 3 == 0,
        )
        ids.append(farm["id"])

    async def all_pages(query: str, limit: int) -> list[int]:
        seen: list[int] = []
        cursor = None
        while True:
            params = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            page = (await client.get(f"/v1/farms?{params}", headers=farmer.headers)).json()
            seen += [f["id"] for f in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert await all_pages("", 3) == ids
    assert await all_pages("region=gangwon", 2) == ids[4:]
    assert await all_pages("crop=radish", 10) == ids[4:]
    assert await all_pages("organic=true", 1) == [ids[0], ids[3], ids[6]]
    assert await all_pages(f"owner_id={farmer.id}", 2) == ids[1::2]
    bad = await client.get("/v1/farms?cursor=not-a-cursor", headers=farmer.headers)
    assert bad.status_code == 400  # not one this server signed
    assert "cursor" in bad.json()["error"]["message"]


async def test_a_cursor_keeps_its_filters(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    """The issue's case: the second page of region=jeju&crop=tangerine is still Jeju's
    tangerine farms, and the cursor sent with other filters (or none) is a 400."""
    farmer = actors[Role.farmer]
    for i in range(6):
        jeju = i % 2 == 0
        await create_farm(
            client,
            farmer,
            name=f"farm {i}",
            region="jeju" if jeju else "gangwon",
            crops=["tangerine"] if jeju else ["potato"],
        )
    query = "region=jeju&crop=tangerine&limit=2"
    first = (await client.get(f"/v1/farms?{query}", headers=farmer.headers)).json()
    cursor = first["next_cursor"]
    second = await client.get(f"/v1/farms?{query}&cursor={cursor}", headers=farmer.headers)
    assert second.status_code == 200, second.text
    assert [f["region"] for f in first["items"] + second.json()["items"]] == ["jeju"] * 3
    assert second.json()["next_cursor"] is None
    # the same filters spelled differently (order, an explicit default) are the same list
    same = await client.get(
        f"/v1/farms?status=active&crop=tangerine&region=jeju&limit=5&cursor={cursor}",
        headers=farmer.headers,
    )
    assert same.status_code == 200, same.text
    for other in ("", "region=jeju&", "region=gangwon&crop=tangerine&", "organic=true&"):
        changed = await client.get(f"/v1/farms?{other}cursor={cursor}", headers=farmer.headers)
        assert changed.status_code == 400, (other, changed.text)
        error = changed.json()["error"]
        assert error["code"] == "bad_request"
        assert "same filters" in error["message"]


async def test_list_is_cached_and_writes_show_at_once(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    await create_farm(client, farmer)
    hits, misses = cache_count("hit"), cache_count("miss")
    first = await client.get("/v1/farms", headers=farmer.headers)
    second = await client.get("/v1/farms", headers=farmer.headers)
    assert first.json() == second.json()
    assert cache_count("miss") == misses + 1
    assert cache_count("hit") == hits + 1

    metrics = (await client.get("/metrics")).text
    assert 'cache_requests_total{namespace="farms",result="hit"}' in metrics

    await create_farm(client, farmer, name="brand new")
    after = await client.get("/v1/farms", headers=farmer.headers)
    assert [f["name"] for f in after.json()["items"]][-1] == "brand new"


async def test_unknown_region_and_crop_name_valid_values(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    bad_region = await client.post(
        "/v1/farms", json=farm_body(region="tokyo"), headers=farmer.headers
    )
    assert bad_region.status_code == 422
    error = bad_region.json()["error"]
    assert error["code"] == "invalid_input"
    assert "tokyo" in error["message"] and "gyeongbuk" in error["message"]

    bad_crop = await client.get("/v1/farms?crop=durian", headers=farmer.headers)
    assert bad_crop.status_code == 422
    assert "napa_cabbage" in bad_crop.json()["error"]["message"]
