"""Ledger tests run on both stacks (tests/conftest.py) with an anchor every 5 entries."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pamtalk.db.models import Role
from pamtalk.ledger import verify
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm

ANCHOR_EVERY = 5
PAMTALK = str(Path(sys.executable).parent / "pamtalk")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ledger_anchor_every": ANCHOR_EVERY})


async def buy(
    client: httpx.AsyncClient, farm: dict[str, Any], buyer: Actor, kg: int = 3
) -> dict[str, Any]:
    body = {"farm_id": farm["id"], "crop": "tangerine", "quantity_kg": kg, "unit_price_krw": 2500}
    response = await client.post("/v1/transactions", json=body, headers=buyer.headers)
    assert response.status_code == 201, response.text
    tx: dict[str, Any] = response.json()
    return tx


async def sales(
    client: httpx.AsyncClient, actors: dict[Role, Actor], n: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A farm of the farmer's and ``n`` purchases from it by the buyer, one by one."""
    farm = await create_farm(client, actors[Role.farmer])
    return farm, [await buy(client, farm, actors[Role.buyer], kg=i + 1) for i in range(n)]


async def check(app: FastAPI, start: int = 1) -> verify.Report:
    async with app.state.pamtalk.sessions.write() as session:
        return await verify.verify(session, start)


async def pamtalk(
    *args: str, database_url: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``pamtalk`` command (in a thread: the event loop keeps serving the app)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_")}
    if database_url:
        env["PAMTALK_DATABASE_URL"] = database_url
    return await asyncio.to_thread(
        subprocess.run,
        [PAMTALK, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
