"""The authorization matrix: every write route x every role, and no credentials. The rules
beyond who may call a route (who changes a farm's status, whose ESG scores are stored, who
starts an ESG job, who sees a farm's private fields) extend it in
tests/security/test_authorization.py (RULES), over the same callers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pamtalk.db.models import Role
from tests.conftest import Actor, ActorFactory, create_farm, farm_body
from tests.notify.test_api import MATRIX as NOTIFY_MATRIX
from tests.security.test_authorization import RULES
from tests.serving.test_authorization import MATRIX as PREDICTION_MATRIX
from tests.serving.test_models_api import MATRIX as MODELS_MATRIX

ANON = "anonymous"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# (method, path template) -> expected status for each caller. "owner" is the farmer who owns
# the farm being written; "farmer" is another farmer.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/v1/farms"): {
        ANON: 401,
        "owner": 201,
        "farmer": 201,
        "buyer": 403,
        "analyst": 403,
        "admin": 201,
    },
    ("PATCH", "/v1/farms/{farm_id}"): {
        ANON: 401,
        "owner": 200,
        "farmer": 403,
        "buyer": 403,
        "analyst": 403,
        "admin": 200,
    },
    ("DELETE", "/v1/farms/{farm_id}"): {
        ANON: 401,
        "owner": 204,
        "farmer": 403,
        "buyer": 403,
        "analyst": 403,
        "admin": 204,
    },
    ("POST", "/v1/transactions"): {
        ANON: 401,
        "owner": 403,
        "farmer": 403,
        "buyer": 201,
        "analyst": 403,
        "admin": 201,
    },
    ("POST", "/v1/users"):  # creating an analyst account
    {ANON: 403, "owner": 403, "farmer": 403, "buyer": 403, "analyst": 403, "admin": 201},
    ("POST", "/v1/auth/api-keys"): {
        ANON: 401,
        "owner": 201,
        "farmer": 201,
        "buyer": 201,
        "analyst": 201,
        "admin": 201,
    },
    ("DELETE", "/v1/auth/api-keys/{key_id}"):  # the owner's key
    {ANON: 401, "owner": 204, "farmer": 404, "buyer": 404, "analyst": 404, "admin": 204},
    ("POST", "/v1/auth/logout"): {
        ANON: 401,
        "owner": 204,
        "farmer": 204,
        "buyer": 204,
        "analyst": 204,
        "admin": 204,
    },
    ("POST", "/v1/auth/login"):  # wrong password for everyone; no credentials needed
    {ANON: 401, "owner": 401, "farmer": 401, "buyer": 401, "analyst": 401, "admin": 401},
    ("POST", "/v1/auth/logout-all"): {
        ANON: 401,
        "owner": 204,
        "farmer": 204,
        "buyer": 204,
        "analyst": 204,
        "admin": 204,
    },
    ("PATCH", "/v1/users/{user_id}"):  # the owner's role: admins only, not the user
    {ANON: 401, "owner": 403, "farmer": 403, "buyer": 403, "analyst": 403, "admin": 200},
}
CALLERS = [ANON, "owner", "farmer", "buyer", "analyst", "admin"]


def test_the_rules_matrix_has_every_caller() -> None:
    for rule, row in RULES.items():
        assert list(row) == CALLERS, rule
        assert row[ANON] == 401, rule


def test_matrix_covers_every_write_route(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in WRITE_METHODS
    }
    assert routes == set(MATRIX) | set(PREDICTION_MATRIX) | set(MODELS_MATRIX) | set(NOTIFY_MATRIX)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
async def test_write_route_by_role(
    client: httpx.AsyncClient, new_actor: ActorFactory, route: tuple[str, str], caller: str
) -> None:
    owner = await new_actor(Role.farmer)
    farm = await create_farm(client, owner)
    owner_key = (
        await client.post("/v1/auth/api-keys", json={"name": "k"}, headers=owner.headers)
    ).json()
    headers: dict[str, str] = {}
    if caller != ANON:
        actor: Actor = owner if caller == "owner" else await new_actor(Role(caller))
        headers = actor.headers

    method, template = route
    path = template.format(farm_id=farm["id"], key_id=owner_key["id"], user_id=owner.id)
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/farms"): farm_body(),
        ("PATCH", "/v1/farms/{farm_id}"): {"name": "renamed"},
        ("POST", "/v1/transactions"): {
            "farm_id": farm["id"],
            "crop": "tangerine",
            "quantity_kg": 5,
            "unit_price_krw": 1000,
            **({"buyer_id": (await new_actor(Role.buyer)).id} if caller == "admin" else {}),
        },
        ("POST", "/v1/users"): {
            "email": f"new-analyst-{caller}@example.kr",
            "name": "분석",
            "password": "long enough pw",
            "role": "analyst",
        },
        ("POST", "/v1/auth/api-keys"): {"name": "app"},
        ("POST", "/v1/auth/login"): {"email": "admin@pamtalk.local", "password": "wrong pass"},
        ("PATCH", "/v1/users/{user_id}"): {"role": "buyer"},
    }
    response = await client.request(method, path, json=bodies.get(route), headers=headers)
    assert response.status_code == MATRIX[route][caller], response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"] and error["request_id"]
