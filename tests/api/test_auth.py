from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from pamtalk.db.models import Role
from pamtalk.security import digest
from tests.conftest import ADMIN_KEY, PASSWORD, Actor, Stack


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def test_sign_up_then_log_in_and_out(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/users",
        json={
            "email": "Kim@Farm.kr",
            "name": "김농부",
            "password": "s3cret-pass",
            "role": "farmer",
        },
    )
    # 202 and the same body for a new and a taken email: sign-up does not tell who has an
    # account (tests/security/test_authorization.py checks the taken case in full).
    assert created.status_code == 202, created.text
    assert created.json()["email"] == "kim@farm.kr"
    assert "password" not in created.text and "hash" not in created.text

    duplicate = await client.post(
        "/v1/users", json={"email": "kim@farm.kr", "name": "x", "password": "other-pass"}
    )
    assert (duplicate.status_code, duplicate.json()) == (202, created.json())

    assert (await login(client, "kim@farm.kr", "wrong-pass")).status_code == 401
    session = await login(client, "kim@farm.kr", "s3cret-pass")
    assert session.status_code == 200
    body = session.json()
    assert body["expires_in"] == 1800 and body["user"]["role"] == "farmer"
    auth = {"Authorization": f"Bearer {body['token']}"}

    me = await client.get("/v1/users/me", headers=auth)
    assert me.status_code == 200 and me.json()["name"] == "김농부"

    assert (await client.post("/v1/auth/logout", headers=auth)).status_code == 204
    after = await client.get("/v1/users/me", headers=auth)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthorized"


async def test_unknown_email_and_bad_header_are_401(client: httpx.AsyncClient) -> None:
    assert (await login(client, "nobody@example.kr")).status_code == 401
    for header in (
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nonsense"},
        {"X-API-Key": "pt_not-a-key"},
    ):
        response = await client.get("/v1/farms", headers=header)
        assert response.status_code == 401, header


async def test_session_ttl_slides(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], stack: Stack
) -> None:
    if stack.redis_url is None:
        pytest.skip("checks the TTL as Redis reports it")
    token = (await login(client, actors[Role.buyer].email)).json()["token"]
    redis = Redis.from_url(stack.redis_url)
    key = f"session:{digest(token)}"
    await redis.expire(key, 100)
    response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert 1790 <= await redis.ttl(key) <= 1800
    await redis.aclose()


async def test_api_keys_are_shown_once_and_revocable(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer]
    created = await client.post(
        "/v1/auth/api-keys", json={"name": "mobile app"}, headers=buyer.headers
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("pt_") and created.json()["prefix"] == key[:7]  # pt_ + 4 chars

    listed = await client.get("/v1/auth/api-keys", headers={"X-API-Key": key})
    assert listed.status_code == 200
    assert all("key" not in item for item in listed.json())
    assert [i["name"] for i in listed.json()] == ["test", "mobile app"]

    bearer = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    assert bearer.json()["id"] == buyer.id

    revoked = await client.delete(
        f"/v1/auth/api-keys/{created.json()['id']}", headers=buyer.headers
    )
    assert revoked.status_code == 204
    assert (await client.get("/v1/users/me", headers={"X-API-Key": key})).status_code == 401


async def test_bootstrap_admin_key(client: httpx.AsyncClient) -> None:
    me = await client.get("/v1/users/me", headers={"X-API-Key": ADMIN_KEY})
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    analyst = await client.post(
        "/v1/users",
        headers={"X-API-Key": ADMIN_KEY},
        json={
            "email": "a@pamtalk.kr",
            "name": "분석가",
            "password": "long enough",
            "role": "analyst",
        },
    )
    assert analyst.status_code == 201


async def test_repeated_wrong_passwords_are_throttled(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    email = actors[Role.farmer].email
    for _ in range(10):
        assert (await login(client, email, "guess-guess")).status_code == 401
    throttled = await login(client, email)  # even the right password waits now
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "900"
    assert throttled.json()["error"]["code"] == "too_many_requests"
    other = await login(client, actors[Role.buyer].email)
    assert other.status_code == 200
