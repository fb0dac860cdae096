"""Webhook URLs on private, loopback or reserved addresses are refused (at registration and
again at delivery) unless PAMTALK_WEBHOOK_ALLOW_PRIVATE=1."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db.models import Role, Webhook, WebhookDelivery
from pamtalk.notify import webhooks
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm
from tests.notify.conftest import Receiver, drive, register

REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fd00::1]/hook",
    "http://100.64.0.1/hook",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": False})


@pytest.mark.parametrize("url", REFUSED)
async def test_private_addresses_are_refused(
    client: httpx.AsyncClient, actors: dict[Role, Actor], url: str
) -> None:
    body = {"url": url, "events": ["transaction.created"]}
    response = await client.post("/v1/webhooks", json=body, headers=actors[Role.farmer].headers)
    assert response.status_code == 422, response.text
    assert "PAMTALK_WEBHOOK_ALLOW_PRIVATE" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "events"),
    [
        ("ftp://93.184.216.34/hook", ["transaction.created"]),
        ("http://user:pw@93.184.216.34/hook", ["transaction.created"]),
        ("/relative", ["transaction.created"]),
        ("http://93.184.216.34/hook", ["transaction.deleted"]),
        ("http://93.184.216.34/hook", []),
    ],
)
async def test_bad_webhooks_are_refused(
    client: httpx.AsyncClient, actors: dict[Role, Actor], url: str, events: list[str]
) -> None:
    body = {"url": url, "events": events}
    response = await client.post("/v1/webhooks", json=body, headers=actors[Role.farmer].headers)
    assert response.status_code == 422, response.text


async def test_a_public_address_is_accepted(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await register(client, actors[Role.farmer], "https://93.184.216.34/hook", ["farm.suspended"])


async def test_delivery_refuses_a_private_address_too(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], receiver: Receiver
) -> None:
    """A webhook whose address is private by delivery time (registered while allowed, or a
    name that resolves elsewhere now) is not sent to: the attempt fails and is retried."""
    farmer = actors[Role.farmer]
    async with app.state.pamtalk.sessions.write() as session:
        sealed = webhooks.secret_box(app.state.pamtalk.settings).seal("s")
        hook = Webhook(
            user_id=farmer.id, url=receiver.url, events=["farm.suspended"], secret_encrypted=sealed
        )
        session.add(hook)
        await session.commit()
    farm = await create_farm(client, farmer)
    patched = await client.patch(  # only an admin suspends a farm
        f"/v1/farms/{farm['id']}", json={"status": "suspended"}, headers=actors[Role.admin].headers
    )
    assert patched.status_code == 200, patched.text
    assert await drive(app) == 1
    assert receiver.requests == []
    async with app.state.pamtalk.sessions.write() as session:
        row = (await session.scalars(select(WebhookDelivery))).one()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and "PAMTALK_WEBHOOK_ALLOW_PRIVATE" in row.last_error
