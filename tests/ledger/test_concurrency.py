"""Concurrent writers queue on the chain head: no gaps, no forks."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db.models import LedgerAnchor, LedgerEntry, Role
from tests.conftest import Actor, create_farm
from tests.ledger.conftest import ANCHOR_EVERY, buy, check


async def test_50_concurrent_creations_leave_a_gapless_chain(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    txs = await asyncio.gather(
        *(buy(client, farm, actors[Role.buyer], kg=i + 1) for i in range(50))
    )
    report = await check(app)
    assert report.ok, report.problem
    assert report.entries == 50 and report.anchors == 50 // ANCHOR_EVERY
    async with app.state.pamtalk.sessions.write() as session:
        entries = (await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).all()
        anchors = list(await session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.first)))
    assert [entry.seq for (entry,) in entries] == list(range(1, 51))
    assert {entry.transaction_id for (entry,) in entries} == {tx["id"] for tx in txs}
    assert [(a.first, a.last) for a in anchors] == [(i, i + 4) for i in range(1, 51, 5)]
    assert all(a.receipt is not None and a.receipt["sink"] == "local" for a in anchors)


async def test_verify_during_writes_sees_one_consistent_chain(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    writes = asyncio.gather(*(buy(client, farm, actors[Role.buyer]) for _ in range(30)))
    reports = []
    while not writes.done():
        reports.append(await check(app))
        await asyncio.sleep(0)
    await writes
    assert reports and [r.problem for r in reports if not r.ok] == []
    assert (await check(app)).entries == 30
