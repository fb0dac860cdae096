"""The notification routes by role (merged into tests/api/test_authorization.py's check that
every write route is in a matrix)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pamtalk.db.models import Notification, OutboxEvent, Role
from tests.conftest import ActorFactory

ANON = "anonymous"
CALLERS = [ANON, "owner", "farmer", "buyer", "analyst", "admin"]
# "owner": the farmer whose webhook / notification it is.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/v1/webhooks"): {
        ANON: 401,
        "owner": 201,
        "farmer": 201,
        "buyer": 201,
        "analyst": 201,
        "admin": 201,
    },
    ("DELETE", "/v1/webhooks/{webhook_id}"): {
        ANON: 401,
        "owner": 204,
        "farmer": 404,
        "buyer": 404,
        "analyst": 404,
        "admin": 204,
    },
    ("POST", "/v1/notifications/{notification_id}/read"): {
        ANON: 401,
        "owner": 200,
        "farmer": 404,
        "buyer": 404,
        "analyst": 404,
        "admin": 404,
    },
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
async def test_notification_write_route_by_role(
    app: FastAPI,
    client: httpx.AsyncClient,
    new_actor: ActorFactory,
    route: tuple[str, str],
    caller: str,
) -> None:
    owner = await new_actor(Role.farmer)
    body = {"url": "http://127.0.0.1:9/hook", "events": ["transaction.created"]}
    hook = (await client.post("/v1/webhooks", json=body, headers=owner.headers)).json()
    async with app.state.pamtalk.sessions.write() as session:
        event = OutboxEvent.new("farm.suspended", {}, users=(owner.id,))
        note = Notification(user_id=owner.id, event_id=event.id, type=event.type, payload={})
        session.add(note)
        await session.commit()
    headers = {}
    if caller != ANON:
        headers = (owner if caller == "owner" else await new_actor(Role(caller))).headers
    method, template = route
    path = template.format(webhook_id=hook["id"], notification_id=note.id)
    sent = body if template == "/v1/webhooks" else None
    response = await client.request(method, path, json=sent, headers=headers)
    assert response.status_code == MATRIX[route][caller], response.text


async def test_reads_need_a_caller(client: httpx.AsyncClient) -> None:
    for path in ("/v1/webhooks", "/v1/notifications", "/v1/webhooks/1/deliveries"):
        assert (await client.get(path)).status_code == 401
