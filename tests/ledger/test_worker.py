"""Anchors through the ``blockchain_transactions`` queue (RabbitMQ) and a real ``pamtalk
worker``, on PostgreSQL: sealed in the API's transaction, submitted to the anchor sink by
the worker, which records the receipt; with the broker down they stay sealed and without a
receipt until a settle sends them again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db.models import LedgerAnchor, Role
from pamtalk.ledger import handover, proof
from pamtalk.settings import Settings
from tests.conftest import Actor, Stack
from tests.ledger.conftest import ANCHOR_EVERY, check, sales
from tests.queue_workers import (
    BROKER_URL,
    QueueWorkers,
    broker_settings,
    eventually,
    queue_workers,
)

pytestmark = pytest.mark.parametrize("stack", ["services"], indirect=True)
BROKER_DOWN = "amqp://guest:guest@127.0.0.1:1//"


@pytest.fixture
def broker_url() -> str:
    """The broker the app is configured with."""
    return BROKER_URL


@pytest.fixture
def settings(settings: Settings, broker_url: str) -> Settings:
    return settings.model_copy(update={"celery_broker_url": broker_url})


@pytest.fixture(scope="module")
def workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueWorkers]:
    """One worker for the module's tests (the stack's database is the same for all)."""
    with queue_workers(stack.database_url, tmp_path_factory.mktemp("workers")) as started:
        yield started


async def receipts(app: FastAPI) -> list[dict[str, Any] | None]:
    async with app.state.pamtalk.sessions.write() as session:
        found = await session.scalars(select(LedgerAnchor.receipt).order_by(LedgerAnchor.first))
        return list(found)


async def test_anchors_reach_the_sink_through_a_worker(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], workers: QueueWorkers
) -> None:
    await workers.ready()
    _, bought = await sales(client, actors, 2 * ANCHOR_EVERY)  # two anchors sealed

    async def submitted() -> bool:
        found = await receipts(app)
        return len(found) == 2 and None not in found

    await eventually(submitted, workers, "two receipts")
    assert [r and r["sink"] for r in await receipts(app)] == ["local", "local"]
    assert (await check(app)).ok
    proved = await client.get(
        f"/v1/ledger/transactions/{bought[0]['id']}/proof", headers=actors[Role.buyer].headers
    )
    assert proof.check(proved.content).receipt == (await receipts(app))[0]


@pytest.mark.parametrize("broker_url", [BROKER_DOWN])
async def test_anchors_sealed_while_the_broker_is_down_are_sent_by_a_later_settle(
    settings: Settings,
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    workers: QueueWorkers,
) -> None:
    await sales(client, actors, ANCHOR_EVERY)  # sealed; sending it fails, the sale does not
    assert await receipts(app) == [None]
    await workers.ready()
    async with app.state.pamtalk.sessions.write() as session:
        up = broker_settings(settings)
        assert await handover.settle(session, up) == (None, 1)  # nothing new sealed, 1 sent

    async def submitted() -> bool:
        return None not in await receipts(app)

    await eventually(submitted, workers, "the receipt")
    assert (await check(app)).ok
