"""The seed's transactions are ledgered in bulk, and the API's appends follow on."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db.models import Farm, FarmCrop, LedgerHead, Role, User
from pamtalk.db.seed import SeedSize
from pamtalk.ledger import ops
from pamtalk.settings import Settings
from tests.conftest import Actor
from tests.ledger.conftest import ANCHOR_EVERY, check


async def test_seeded_transactions_are_ledgered_and_appends_follow_on(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings
) -> None:
    counts = await ops.seed_database(settings, SeedSize(farms=8, buyers=4, transactions=23))
    assert counts["ledger entries"] == counts["transactions"] == 23
    report = await check(app)
    assert report.ok and (report.entries, report.anchors) == (23, 23 // ANCHOR_EVERY)

    async with app.state.pamtalk.sessions.write() as session:
        farm_id, crop = (await session.execute(select(FarmCrop.farm_id, FarmCrop.crop))).first()
        owner = await session.scalar(select(User).join(Farm).where(Farm.id == farm_id))
        head = await session.get(LedgerHead, 1)
    assert owner is not None and head is not None
    assert (head.seq, head.anchored_seq, head.pending_since is not None) == (23, 20, True)
    body = {"farm_id": farm_id, "crop": crop, "quantity_kg": 2, "unit_price_krw": 1000}
    for _ in range(2):
        response = await client.post(
            "/v1/transactions", json=body, headers=actors[Role.buyer].headers
        )
        assert response.status_code == 201, response.text
    report = await check(app)
    assert report.ok and (report.entries, report.anchors) == (25, 5), report.problem
