"""Finding 3: rate limits per client address (login, sign-up) and per user (authenticated
requests; predictions in their own bucket), with 429 + Retry-After + RateLimit-* headers,
``rate_limited_total{scope}``, and failing open when their Redis is down."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from pamtalk.api.app import create_app
from pamtalk.db.models import Role
from pamtalk.settings import Settings
from tests.conftest import Actor, running


def rate_limited(scope: str) -> float:
    return REGISTRY.get_sample_value("rate_limited_total", {"scope": scope}) or 0.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "rate_limit_auth": "3/minute",
            "rate_limit_principal": "5/minute",
            "rate_limit_predictions": "2/minute",
        }
    )


def assert_limited(answer: httpx.Response, limit: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "too_many_requests"
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["ratelimit-limit"] == str(limit)
    assert answer.headers["ratelimit-remaining"] == "0"
    assert int(answer.headers["ratelimit-reset"]) >= 1


async def test_login_and_sign_up_share_a_limit_per_address(client: httpx.AsyncClient) -> None:
    before = rate_limited("auth")
    login = {"email": "nobody@example.kr", "password": "guess-guess"}
    first = await client.post("/v1/auth/login", json=login)
    assert first.status_code == 401
    sign_up = {"email": "new@example.kr", "name": "신규", "password": "long enough pw"}
    assert (await client.post("/v1/users", json=sign_up)).status_code in (201, 202)
    assert (await client.post("/v1/auth/login", json=login)).status_code == 401
    assert_limited(await client.post("/v1/auth/login", json=login), 3)
    assert_limited(await client.post("/v1/users", json=sign_up | {"email": "b@x.kr"}), 3)
    assert rate_limited("auth") == before + 2


async def test_authenticated_requests_per_user_and_predictions_apart(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer, farmer = actors[Role.buyer], actors[Role.farmer]
    before = rate_limited("principal"), rate_limited("predictions")
    for remaining in (4, 3, 2, 1, 0):
        answer = await client.get("/v1/users/me", headers=buyer.headers)
        assert answer.status_code == 200
        assert answer.headers["ratelimit-remaining"] == str(remaining)
    assert_limited(await client.get("/v1/farms", headers=buyer.headers), 5)
    # Another user has a bucket of their own; health and metrics are never counted.
    assert (await client.get("/v1/users/me", headers=farmer.headers)).status_code == 200
    for _ in range(10):
        assert (await client.get("/healthz")).status_code == 200

    # Predictions: their own bucket, so the farmer's reads go on after it is spent.
    body = {"crop": "tangerine", "region": "jeju", "horizon_days": 7}
    for _ in range(2):
        answer = await client.post("/v1/predictions/demand", json=body, headers=farmer.headers)
        assert answer.status_code != 429
    assert_limited(
        await client.post("/v1/predictions/demand", json=body, headers=farmer.headers), 2
    )
    assert (await client.get("/v1/users/me", headers=farmer.headers)).status_code == 200
    assert (rate_limited("principal"), rate_limited("predictions")) == (
        before[0] + 1,
        before[1] + 1,
    )


async def test_limits_fail_open_when_their_redis_is_down(
    settings: Settings, actors: dict[Role, Actor], app: FastAPI
) -> None:
    """Counters on a Redis nobody listens on: requests are served, without RateLimit headers."""
    dead = settings.model_copy(update={"security_redis_url": "redis://127.0.0.1:9/0"})
    other = create_app(dead)
    async with running(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(8):  # past the limit of 5
                answer = await client.get("/v1/users/me", headers=actors[Role.buyer].headers)
                assert answer.status_code == 200, answer.text
                assert "ratelimit-limit" not in answer.headers
