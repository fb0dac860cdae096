"""Finding 1: login guessing. Attempts are counted before the password is checked, per
account and per client address, and X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from pamtalk.cli.serve import proxy_options
from pamtalk.db.models import Role
from pamtalk.settings import Settings
from tests.conftest import PASSWORD, Actor

ACCOUNT_LIMIT = 10
ADDRESS_LIMIT = 30  # above the 25 concurrent guesses: only the account limit bites there


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "login_max_failures_per_account": ACCOUNT_LIMIT,
            "login_max_failures_per_address": ADDRESS_LIMIT,
            "password_hash_concurrency": 25,  # every guess may reach the check at once
        }
    )


async def login(
    client: httpx.AsyncClient, email: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def test_concurrent_guesses_check_at_most_the_limit(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    email = actors[Role.farmer].email
    answers = await asyncio.gather(*(login(client, email, f"guess-{i:04d}") for i in range(25)))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {401: ACCOUNT_LIMIT, 429: 25 - ACCOUNT_LIMIT}
    locked = next(answer for answer in answers if answer.status_code == 429)
    assert locked.headers["retry-after"] == "900"
    assert locked.json()["error"]["code"] == "too_many_requests"
    # The right password waits too, while the account is locked.
    assert (await login(client, email, PASSWORD)).status_code == 429


async def test_one_address_is_limited_across_accounts(client: httpx.AsyncClient) -> None:
    for i in range(ADDRESS_LIMIT):
        assert (await login(client, f"nobody{i}@example.kr", "guess-guess")).status_code == 401
    answer = await login(client, "someone-else@example.kr", "guess-guess")
    assert answer.status_code == 429 and "retry-after" in answer.headers


@pytest.fixture
async def served(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app wrapped as ``pamtalk serve`` wraps it in uvicorn (its proxy-header handling
    from the same settings), called from 127.0.0.1."""
    config = uvicorn.Config(app, log_config=None, **proxy_options(settings))
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    served: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    # A fresh X-Forwarded-For on every guess, from 127.0.0.1, with no proxy trusted.
    for i in range(ADDRESS_LIMIT):
        answer = await login(
            served, f"nobody{i}@example.kr", "guess-guess", **{"X-Forwarded-For": f"10.9.0.{i}"}
        )
        assert answer.status_code == 401
    rotated = await login(
        served, actors[Role.buyer].email, PASSWORD, **{"X-Forwarded-For": "10.9.1.1"}
    )
    assert rotated.status_code == 429


def test_proxy_headers_only_from_trusted_proxies() -> None:
    assert proxy_options(Settings()) == {"proxy_headers": False}
    trusted = Settings(trusted_proxies="10.0.0.0/8, 192.168.1.7")
    assert proxy_options(trusted) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8", "192.168.1.7"],
    }
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(trusted_proxies="10.0.0.0/8, not-an-address")


@pytest.fixture
def behind_proxy(settings: Settings) -> Settings:
    return settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]})


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    client: httpx.AsyncClient, behind_proxy: Settings, app: FastAPI
) -> None:
    config = uvicorn.Config(app, log_config=None, **proxy_options(behind_proxy))
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as proxied:
        for i in range(ADDRESS_LIMIT + 5):  # each client its own address: none is limited
            answer = await login(
                proxied, f"nobody{i}@example.kr", "guess", **{"X-Forwarded-For": f"10.9.0.{i}"}
            )
            assert answer.status_code == 401
        # Yet the proxy's clients are counted: one of them, past its own limit, is refused.
        for _ in range(ADDRESS_LIMIT):
            await login(proxied, "x@example.kr", "guess", **{"X-Forwarded-For": "10.9.9.9"})
        answer = await login(proxied, "y@example.kr", "guess", **{"X-Forwarded-For": "10.9.9.9"})
        assert answer.status_code == 429
