"""Webhook secrets at rest: encrypted in the database (a dump does not reveal them), still
signing deliveries that verify; readable after a change of PAMTALK_SECRET_KEY only while
PAMTALK_SECRET_KEY_PREVIOUS holds the old key; migration 0007 encrypts the rows there are
and its downgrade decrypts them, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, text

from pamtalk.db.migrate import alembic_config, upgrade
from pamtalk.db.models import DeliveryStatus, Role, WebhookDelivery
from pamtalk.db.session import create_engine
from pamtalk.notify import delivery, relay, webhooks
from pamtalk.settings import Settings
from tests import services
from tests.conftest import Actor, create_farm
from tests.notify.conftest import Clock, Receiver, drive, readme_recipe, register
from tests.notify.test_webhooks import buy

OLD_KEY, NEW_KEY = "k" * 40 + "-the-old-one", "n" * 40 + "-the-new-one"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secret_key": SecretStr(OLD_KEY)})


async def dump(app: FastAPI) -> str:
    """Every webhook row as text, as a database dump would have it."""
    async with app.state.pamtalk.engine.connect() as conn:
        return repr((await conn.execute(text("SELECT * FROM webhooks"))).all())


async def test_secrets_are_encrypted_and_deliveries_still_verify(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    secret = hook["secret"]
    rows = await dump(app)
    assert receiver.url in rows  # the row is there
    assert secret not in rows and secret.removeprefix("whsec_")[:12] not in rows

    await buy(client, await create_farm(client, farmer), actors[Role.buyer])
    assert await drive(app) == 1
    [got] = receiver.requests
    event = readme_recipe()(secret, got.headers["X-Pamtalk-Signature"], got.body)
    assert event["type"] == "transaction.created"


async def test_a_new_secret_key_reads_old_secrets_only_with_the_previous_one(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    farmer = actors[Role.farmer]
    hook = await register(client, farmer, receiver.url, ["transaction.created"])
    await buy(client, await create_farm(client, farmer), actors[Role.buyer])
    state = app.state.pamtalk
    await relay.publish_all(state.sessions)

    rotated = state.settings.model_copy(update={"secret_key": SecretStr(NEW_KEY)})
    async with delivery.Sender(rotated) as sender:
        assert await delivery.deliver_due(state.sessions, sender) == 1
    assert receiver.requests == []  # nothing signed with a secret it could not read
    async with state.sessions.write() as session:
        row = (await session.scalars(select(WebhookDelivery))).one()
    assert row.status == DeliveryStatus.pending and row.attempts == 1
    assert row.last_error and "PAMTALK_SECRET_KEY_PREVIOUS" in row.last_error

    with_previous = rotated.model_copy(update={"secret_key_previous": SecretStr(OLD_KEY)})
    async with delivery.Sender(with_previous) as sender:
        later = Clock()
        later.advance(delivery.backoff(1))  # the failed attempt's retry is due
        assert await delivery.deliver_due(state.sessions, sender, later) == 1
    [got] = receiver.requests
    readme_recipe()(hook["secret"], got.headers["X-Pamtalk-Signature"], got.body)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    url = await services.create_database()
    yield url
    await services.drop_database(url)


async def test_migration_encrypts_existing_secrets_and_its_downgrade_decrypts(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url, secret_key=SecretStr(OLD_KEY))
    engine = create_engine(settings)
    webhook = "SELECT * FROM webhooks"
    try:
        await upgrade(engine, "0006")  # webhook secrets in plain text
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, name, role, is_active, created_at) VALUES"
                    " (1, 'f@example.com', 'F', 'farmer', true, CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO webhooks (id, user_id, url, events, secret, created_at) VALUES"
                    " (1, 1, 'https://example.com/h', '[]', 'whsec_plain', CURRENT_TIMESTAMP)"
                )
            )
        await upgrade(engine, "head", settings=settings)
        async with engine.connect() as conn:
            row = (await conn.execute(text(webhook))).one()
        assert "whsec_plain" not in repr(row)
        assert webhooks.secret_box(settings).open(row.secret_encrypted) == "whsec_plain"

        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: command.downgrade(alembic_config(sync, settings), "0006")
            )
        async with engine.connect() as conn:
            assert (await conn.execute(text(webhook))).one().secret == "whsec_plain"
    finally:
        await engine.dispose()
