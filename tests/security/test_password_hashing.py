"""Finding 2: Argon2 behind a cap. Beyond ``password_hash_concurrency`` hashes at once, a
login or sign-up that finds no slot within the wait is a fast 503, not a queue."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from pamtalk.db.models import Role
from pamtalk.security import HashingBusy, PasswordHashing
from pamtalk.settings import Settings
from tests.conftest import PASSWORD, Actor


async def test_hashes_beyond_the_cap_are_refused_at_once() -> None:
    hashing = PasswordHashing(concurrency=2, wait_s=0)
    results = await asyncio.gather(
        *(hashing.hash(f"password-{i}") for i in range(3)), return_exceptions=True
    )
    busy = [r for r in results if isinstance(r, HashingBusy)]
    assert len(busy) == 1 and busy[0].status_code == 503
    assert busy[0].headers == {"Retry-After": "1"}
    hashed = [r for r in results if isinstance(r, str)]
    assert len(hashed) == 2 and await hashing.verify(hashed[0], "password-0")
    # Slots come back: the next one is served.
    assert await hashing.verify(None, "anything") is False


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"password_hash_concurrency": 1, "password_hash_wait_s": 0.0})


async def test_a_burst_of_sign_ups_is_shed_with_503(client: httpx.AsyncClient) -> None:
    async def sign_up(i: int) -> httpx.Response:
        body = {"email": f"new{i}@example.kr", "name": "신규", "password": "long enough pw"}
        return await client.post("/v1/users", json=body)

    answers = await asyncio.gather(*(sign_up(i) for i in range(6)))
    statuses = sorted(answer.status_code for answer in answers)
    # Sign-up answers 201, or 202 where it does not say whether the email is taken.
    assert 503 in statuses and set(statuses) - {503} and set(statuses) <= {201, 202, 503}
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.json()["error"]["code"] == "busy" and busy.headers["retry-after"] == "1"


async def test_a_login_refused_for_capacity_is_not_counted_as_a_guess(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    email = actors[Role.buyer].email
    guess = {"email": email, "password": "guess-guess"}
    async with app.state.pamtalk.hashing.slot():  # the only slot, taken
        for _ in range(15):
            answer = await client.post("/v1/auth/login", json=guess)
            assert answer.status_code == 503, answer.text
    # None of them was checked, so none counts towards the account's lock.
    answer = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
