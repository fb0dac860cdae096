"""Finding 8: rough edges. A 500 keeps its request id and says nothing of the exception;
security headers on every answer (no-store on auth); names refuse control and bidi
characters; numbers and booleans in bodies are strict; a chunked body over the limit is a
413; a failed job's reason stays with the operators."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pamtalk.batching import jobs
from pamtalk.db.models import Role
from pamtalk.db.types import utcnow
from tests.conftest import Actor, farm_body

SECRET_TEXT = "password=hunter2 at db-internal.example:5432"


async def test_a_500_keeps_its_request_id_and_hides_the_exception(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def broken() -> None:
        raise RuntimeError(SECRET_TEXT)

    app.add_api_route("/test-broken", broken)
    answer = await client.get("/test-broken", headers={"X-Request-ID": "trace-500"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "trace-500"
    assert answer.json()["error"] == {
        "code": "internal_error",
        "message": "internal server error",
        "request_id": "trace-500",
    }
    assert "hunter2" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_security_headers(client: httpx.AsyncClient, actors: dict[Role, Actor]) -> None:
    buyer = actors[Role.buyer]
    login = await client.post(
        "/v1/auth/login", json={"email": buyer.email, "password": "correct horse battery"}
    )
    key = await client.post("/v1/auth/api-keys", json={"name": "app"}, headers=buyer.headers)
    keys = await client.get("/v1/auth/api-keys", headers=buyer.headers)
    me = await client.get("/v1/users/me", headers=buyer.headers)
    signup = await client.post(
        "/v1/users", json={"email": "x@farm.kr", "name": "x", "password": "long enough"}
    )
    bad_login = await client.post("/v1/auth/login", json={"email": "x@y.kr", "password": "nope"})
    for answer in (login, key, keys, me, signup, bad_login):
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
    farms = await client.get("/v1/farms", headers=buyer.headers)
    health = await client.get("/healthz")
    missing = await client.get("/v1/nothing-here")
    for answer in (farms, health, missing):
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert "no-store" not in answer.headers.get("cache-control", "")


@pytest.mark.parametrize(
    "name",
    [
        "evil\u202egnp.exe",  # right-to-left override
        "a\u2066b\u2069",  # isolates
        "line\nbreak",
        "tab\there",
        "bell\x07",
        "esc\x1b[31m",
        "del\x7f",
    ],
)
async def test_names_refuse_control_and_bidi_characters(
    client: httpx.AsyncClient, actors: dict[Role, Actor], name: str
) -> None:
    farmer = actors[Role.farmer].headers
    for method, url, body in (
        ("POST", "/v1/farms", farm_body(name=name)),
        ("POST", "/v1/farms", farm_body(address=name)),
        ("POST", "/v1/auth/api-keys", {"name": name}),
        ("POST", "/v1/users", {"email": "n@farm.kr", "name": name, "password": "long enough"}),
    ):
        answer = await client.request(method, url, json=body, headers=farmer)
        assert answer.status_code == 422, (url, answer.text)
        assert "control" in answer.json()["error"]["message"]
    # Korean, accents, emoji and plain spaces are names like any other.
    fine = await client.post("/v1/farms", json=farm_body(name="한라 농장 é 🍊"), headers=farmer)
    assert fine.status_code == 201, fine.text


async def test_booleans_are_not_numbers_nor_numbers_booleans(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer].headers
    for field, value in (
        ("area_m2", True),  # the audit's: stored as 1 before
        ("area_m2", "12000"),
        ("area_m2", 12000.5),
        ("latitude", True),
        ("organic", 1),
        ("organic", "yes"),
        ("practices", {"workers": True}),
        ("practices", {"fair_wage": 1}),
        ("practices", {"renewable_share": False}),
    ):
        answer = await client.post("/v1/farms", json=farm_body(**{field: value}), headers=farmer)
        assert answer.status_code == 422, (field, value, answer.text)
    # JSON integers are still floats.
    whole = farm_body(latitude=34, longitude=127, practices={"nitrogen_kg_per_ha": 100})
    answer = await client.post("/v1/farms", json=whole, headers=farmer)
    assert answer.status_code == 201, answer.text
    assert answer.json()["latitude"] == 34.0


async def _chunks(size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * 65_536
        sent += 65_536
    yield b"{}"


async def test_a_chunked_body_over_the_limit_is_a_413(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    limit = app.state.pamtalk.settings.max_body_bytes
    answer = await client.post(
        "/v1/farms",
        content=_chunks(limit + 1),  # no Content-Length: Transfer-Encoding chunked
        headers={**actors[Role.farmer].headers, "content-type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert answer.json()["error"]["request_id"]


async def test_a_failed_jobs_reason_stays_with_the_operators(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer]
    async with app.state.pamtalk.sessions.write() as session:
        chunk = jobs.ChunkPlan("demand", ["cabbage:jeju"])
        job = await jobs.create(session, "demand", utcnow().date(), {}, [chunk], buyer.id)
        await jobs.fail_chunk(session, job.id, 0, f"OperationalError: {SECRET_TEXT}")
    shown = (await client.get(f"/v1/jobs/{job.id}", headers=buyer.headers)).json()
    assert shown["status"] == "failed"
    assert shown["error"].startswith("chunk 0 failed")
    assert "hunter2" not in shown["error"] and "OperationalError" not in shown["error"]
