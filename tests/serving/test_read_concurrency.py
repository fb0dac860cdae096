"""On SQLite, reading endpoints answer while another unit of work holds the write lock: a
read takes no lock of its own (pamtalk/db/session.py), so one slow writer does not queue every
request behind it (issue 14)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pamtalk.db.models import Role
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm

# Were a read to wait for the lock, it would wait until the writer below commits, which it
# does only after the reads: this turns that hang into a failure.
HANG_GUARD_S = 20


async def test_reads_answer_while_the_write_lock_is_held(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings
) -> None:
    if not settings.is_sqlite:
        pytest.skip("PostgreSQL reads never wait for writers")
    farmer, buyer = actors[Role.farmer], actors[Role.buyer]
    farm = await create_farm(client, farmer)
    body = {"farm_id": farm["id"], "crop": "tangerine", "quantity_kg": 2, "unit_price_krw": 900}
    bought = await client.post("/v1/transactions", json=body, headers=buyer.headers)
    assert bought.status_code == 201, bought.text
    reads = [
        ("GET", f"/v1/farms/{farm['id']}", None),
        ("GET", "/v1/farms?region=jeju&limit=5", None),
        ("GET", "/v1/transactions?limit=5", None),
        ("GET", f"/v1/transactions/{bought.json()['id']}", None),
        ("GET", "/v1/dashboard", None),
        ("GET", "/v1/users/me", None),
        ("GET", "/readyz", None),
        # Scored for a buyer, not the owner: not recorded, so a read.
        ("POST", "/v1/esg/score", {"farm_id": farm["id"]}),
        ("POST", "/v1/predictions/demand", {"crop": "tangerine", "region": "jeju"}),
    ]

    async with app.state.pamtalk.sessions.write() as writer:
        await writer.execute(text("UPDATE farms SET name = name WHERE id = :id"), farm)
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.request(method, url, json=json, headers=buyer.headers)
                    for method, url, json in reads
                )
            ),
            HANG_GUARD_S,
        )
        await writer.rollback()
    failed = [
        (url, a.status_code, a.text[:300])
        for (_, url, _), a in zip(reads, answers, strict=True)
        if a.status_code != 200
    ]
    assert failed == []
    assert answers[-2].json()["stored"] is False
