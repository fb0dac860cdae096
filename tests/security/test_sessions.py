"""Finding 5: sessions and login counters live apart from cached responses (no number of
cached pages evicts them), end at an absolute lifetime as well as the sliding one, and a
user's sessions end together on "log out everywhere", a role change or a deactivation."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from fastapi import FastAPI

from pamtalk.api.auth import SESSION_NS
from pamtalk.db.models import Role
from pamtalk.security import digest
from pamtalk.settings import Settings
from tests.conftest import ADMIN_KEY, PASSWORD, Actor, Stack

ADMIN = {"X-API-Key": ADMIN_KEY}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    answer = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get("/v1/users/me", headers=headers)).status_code


async def test_cached_pages_evict_no_session_and_no_guess_count(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], stack: Stack
) -> None:
    if stack.redis_url is not None:
        pytest.skip("eviction in Redis is its maxmemory-policy's (docs/security.md)")
    token = await login(client, actors[Role.buyer].email)
    farmer = actors[Role.farmer].email
    for _ in range(10):
        bad = {"email": farmer, "password": "guess-guess"}
        assert (await client.post("/v1/auth/login", json=bad)).status_code == 401
    cache = app.state.pamtalk.cache
    for page in range(50_001):  # as many distinct cursor pages as the response cache holds
        await cache.set(f"farms:list:{page}", b"[]", 300)
    assert await me(client, bearer(token)) == 200
    answer = await client.post("/v1/auth/login", json={"email": farmer, "password": PASSWORD})
    assert answer.status_code == 429


async def test_a_session_ends_at_its_absolute_lifetime(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings
) -> None:
    token = await login(client, actors[Role.buyer].email)
    assert await me(client, bearer(token)) == 200
    store = app.state.pamtalk.security
    key = f"{SESSION_NS}:{digest(token)}"
    record = orjson.loads(await store.get(key))
    assert record["issued"] <= time.time()
    # Used all along (so never idle for 30 minutes), but logged in 12 hours ago.
    record["issued"] -= settings.session_max_age_s
    await store.set(key, orjson.dumps(record), settings.session_ttl)
    answer = await client.get("/v1/users/me", headers=bearer(token))
    assert answer.status_code == 401 and "log in again" in answer.json()["error"]["message"]
    assert await store.get(key) is None


async def test_log_out_everywhere(client: httpx.AsyncClient, actors: dict[Role, Actor]) -> None:
    buyer = actors[Role.buyer]
    phone, laptop = await login(client, buyer.email), await login(client, buyer.email)
    other = await login(client, actors[Role.farmer].email)
    answer = await client.post("/v1/auth/logout-all", headers=bearer(phone))
    assert answer.status_code == 204
    assert await me(client, bearer(phone)) == 401
    assert await me(client, bearer(laptop)) == 401
    assert await me(client, bearer(other)) == 200  # someone else's stay
    assert await me(client, buyer.headers) == 200  # API keys are not sessions
    assert await me(client, bearer(await login(client, buyer.email))) == 200


async def test_a_role_change_ends_sessions_and_applies_to_api_keys_at_once(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    token = await login(client, farmer.email)
    assert (await client.get("/v1/users/me", headers=farmer.headers)).json()["role"] == "farmer"
    changed = await client.patch(f"/v1/users/{farmer.id}", json={"role": "buyer"}, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "buyer" and changed.json()["is_active"] is True
    assert await me(client, bearer(token)) == 401
    # The key's cached identity (kept for minutes) was dropped: the new role holds now.
    assert (await client.get("/v1/users/me", headers=farmer.headers)).json()["role"] == "buyer"


async def test_deactivation_ends_sessions_and_keys(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer]
    token = await login(client, buyer.email)
    assert await me(client, buyer.headers) == 200  # its principal is cached now
    off = await client.patch(f"/v1/users/{buyer.id}", json={"is_active": False}, headers=ADMIN)
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert await me(client, bearer(token)) == 401
    assert await me(client, buyer.headers) == 401
    refused = await client.post("/v1/auth/login", json={"email": buyer.email, "password": PASSWORD})
    assert refused.status_code == 401
    on = await client.patch(f"/v1/users/{buyer.id}", json={"is_active": True}, headers=ADMIN)
    assert on.status_code == 200 and await me(client, buyer.headers) == 200


async def test_only_admins_change_users_and_not_themselves(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer, admin = actors[Role.farmer], actors[Role.admin]
    mine = await client.patch(
        f"/v1/users/{farmer.id}", json={"role": "admin"}, headers=farmer.headers
    )
    assert mine.status_code == 403
    demote = await client.patch(
        f"/v1/users/{admin.id}", json={"role": "buyer"}, headers=admin.headers
    )
    assert demote.status_code == 403
    missing = await client.patch("/v1/users/999999", json={"role": "buyer"}, headers=ADMIN)
    assert missing.status_code == 404
    invalid = await client.patch(f"/v1/users/{farmer.id}", json={"role": "king"}, headers=ADMIN)
    assert invalid.status_code == 422
