"""The authorization matrix of the prediction routes (models loaded): every signed-in role
may predict; no credentials is a 401. tests/api/test_authorization.py checks that the two
matrices together cover every write route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pamtalk.db.models import Role
from tests.conftest import ActorFactory, create_farm

ANON = "anonymous"
ROLES = ["farmer", "buyer", "analyst", "admin"]
OIP_BODY = {
    "inputs": [
        {"name": "practices", "shape": [1, 34], "datatype": "FP32", "data": [0.5] * 34},
        {"name": "mask", "shape": [1, 34], "datatype": "FP32", "data": [1.0] * 34},
    ]
}
ALLOWED: dict[tuple[str, str], int] = {
    ("POST", "/v1/predictions/demand"): 200,
    ("POST", "/v1/esg/score"): 200,
    ("POST", "/v1/jobs"): 202,  # a single-series job; the nightly one: test_jobs_api
    ("POST", "/v2/models/{name}/infer"): 200,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): 200,
}
MATRIX = {route: {ANON: 401, **dict.fromkeys(ROLES, ok)} for route, ok in ALLOWED.items()}


@pytest.mark.parametrize("caller", [ANON, *ROLES])
@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
async def test_prediction_route_by_role(
    client: httpx.AsyncClient, new_actor: ActorFactory, route: tuple[str, str], caller: str
) -> None:
    farm = await create_farm(client, await new_actor(Role.farmer))
    headers = {} if caller == ANON else (await new_actor(Role(caller))).headers
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/predictions/demand"): {"crop": "cabbage", "region": "jeju"},
        ("POST", "/v1/esg/score"): {"farm_id": farm["id"]},
        ("POST", "/v1/jobs"): {"kind": "demand", "crop": "cabbage", "region": "jeju"},
    }
    method, template = route
    path = template.format(name="pamtalk-esg", version="1")
    body = bodies.get(route, OIP_BODY)
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == MATRIX[route][caller], response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error if path.startswith("/v2") else error["code"] and error["message"]
