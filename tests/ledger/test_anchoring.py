"""Anchors are sealed on time by the API's periodic tick when no write comes to seal them."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.api.app import create_app
from pamtalk.db.models import LedgerAnchor, Role
from pamtalk.settings import Settings
from tests.conftest import Actor, running
from tests.ledger.conftest import check, sales


async def anchored(app: FastAPI) -> list[tuple[int, int, str | None]]:
    async with app.state.pamtalk.sessions.write() as session:
        rows = await session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.first))
        return [(a.first, a.last, (a.receipt or {}).get("sink")) for a in rows]


async def test_an_idle_ledger_is_anchored_on_time(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings
) -> None:
    await sales(client, actors, 2)  # fewer than an anchor's worth, and not overdue
    assert await anchored(app) == []
    quick = create_app(settings.model_copy(update={"ledger_anchor_minutes": 0.005}))  # 0.3 s
    async with running(quick):
        for _ in range(200):
            # Sealed, then its receipt recorded by the sink (after the seal's commit).
            if all(sink is not None for *_, sink in await anchored(app) or [(0, 0, None)]):
                break
            await asyncio.sleep(0.05)
    assert await anchored(app) == [(1, 2, "local")]
    assert (await check(app)).ok
