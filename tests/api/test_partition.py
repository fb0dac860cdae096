"""A network partition between the API and PostgreSQL (tests/chaos' FaultProxy in front of the
test database): a request with a deadline is answered 504 at its deadline, one without is a
retriable 503 after the statement timeout, and both work again once the network heals.

Found by tests/chaos' network_faults: with no timeouts, a partition held every request (and
its pooled connection) until TCP gave up, minutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from pamtalk.api.app import create_app
from pamtalk.db.seed import ensure_admin_api_key
from pamtalk.settings import Settings
from tests.chaos.proxy import FaultProxy
from tests.conftest import ADMIN_KEY, Stack, _reset, running


@pytest.fixture
async def partitionable(
    stack: Stack, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, FaultProxy]]:
    if stack.name != "services":
        pytest.skip("a network partition needs a database over the network")
    await _reset(settings)
    url = make_url(settings.database_url)
    with FaultProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = create_app(
            settings.model_copy(
                update={
                    "database_url": proxied,
                    "database_command_timeout_s": 1.0,
                    "redis_url": None,
                }
            )
        )
        async with running(app):
            async with app.state.pamtalk.sessions.write() as session:
                await ensure_admin_api_key(session, ADMIN_KEY)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
            ) as http:
                assert (await http.get("/v1/transactions")).status_code == 200
                yield http, proxy
                proxy.heal()


async def test_a_deadline_holds_through_a_partition(
    partitionable: tuple[httpx.AsyncClient, FaultProxy],
) -> None:
    http, proxy = partitionable
    proxy.partition()
    began = time.monotonic()
    answer = await http.get("/v1/transactions", headers={"X-Request-Timeout": "0.3"})
    waited = time.monotonic() - began
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "deadline_exceeded"
    assert waited < 1.0  # answered at the deadline, not when the database call unwinds

    proxy.heal()
    await asyncio.sleep(0.1)
    assert (
        await http.get("/v1/transactions", headers={"X-Request-Timeout": "2"})
    ).status_code == 200


async def test_without_a_deadline_the_statement_timeout_bounds_the_wait(
    partitionable: tuple[httpx.AsyncClient, FaultProxy],
) -> None:
    http, proxy = partitionable
    proxy.partition()
    answer = await http.get("/v1/transactions")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "database_unavailable"
    assert answer.headers["retry-after"]

    proxy.heal()
    for _ in range(50):  # the pool drops the connection the timeout left behind
        if (await http.get("/v1/transactions")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("no recovery after the partition healed")
