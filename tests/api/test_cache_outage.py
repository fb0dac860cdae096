"""Redis going away mid-test: requests are still served (bypass, log, metric), never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from pamtalk.api.app import create_app
from pamtalk.db.models import Role
from pamtalk.settings import Settings
from tests.conftest import ActorFactory, create_farm, running
from tests.services import RedisProcess


@pytest.fixture
async def outage_client(
    app: FastAPI, settings: Settings, redis_process: RedisProcess
) -> AsyncIterator[httpx.AsyncClient]:
    # `app` prepared the database (and the admin key); this app uses the private Redis.
    application = create_app(settings.model_copy(update={"redis_url": redis_process.url}))
    async with running(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def farms_cache(result: str) -> float:
    labels = {"namespace": "farms", "result": result}
    return REGISTRY.get_sample_value("cache_requests_total", labels) or 0.0


async def test_requests_survive_redis_stopping(
    outage_client: httpx.AsyncClient, redis_process: RedisProcess, new_actor: ActorFactory
) -> None:
    client = outage_client
    farmer = await new_actor(Role.farmer)
    await create_farm(client, farmer)
    hits = farms_cache("hit")
    for _ in range(2):
        assert (await client.get("/v1/farms", headers=farmer.headers)).status_code == 200
    assert farms_cache("hit") == hits + 1

    redis_process.stop()
    errors = farms_cache("error")
    for _ in range(3):
        listed = await client.get("/v1/farms", headers=farmer.headers)
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 1
    assert farms_cache("error") >= errors + 3
    created = await create_farm(client, farmer, name="written during the outage")
    listed = await client.get("/v1/farms", headers=farmer.headers)
    assert created["id"] in [f["id"] for f in listed.json()["items"]]
    assert (await client.get("/v1/dashboard", headers=farmer.headers)).status_code == 200

    # Sessions live only in the cache: without it a login is a clear 503, not a 500.
    login = await client.post(
        "/v1/auth/login", json={"email": farmer.email, "password": "correct horse battery"}
    )
    assert login.status_code == 503
    assert login.json()["error"]["code"] == "cache_unavailable"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["cache"] != "ok"

    redis_process.start()
    await asyncio.sleep(2.2)  # the circuit breaker's cooldown
    login = await client.post(
        "/v1/auth/login", json={"email": farmer.email, "password": "correct horse battery"}
    )
    assert login.status_code == 200
    token = login.json()["token"]
    listed = await client.get("/v1/farms", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
