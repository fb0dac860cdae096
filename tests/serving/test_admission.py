"""Admission control at a worker's edge: a cap on requests in flight (a fast 503 with
Retry-After beyond it; health exempt), the client's deadline header, and a short wait for a
pooled database connection (503, not a pile-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack

import httpx
import numpy as np
import pytest

from pamtalk.api.app import create_app
from pamtalk.models.contract import ESG
from pamtalk.settings import Settings
from tests.conftest import Actor, running


def profile(i: int) -> dict[str, object]:
    return {"practices": {"nitrogen_kg_per_ha": float(i), "workers": 2}}


async def test_requests_over_the_in_flight_cap_get_a_fast_503(
    settings: Settings, actors: dict[object, Actor]
) -> None:
    capped = settings.model_copy(update={"max_in_flight": 2})
    app = create_app(capped)
    async with running(app):
        champion = app.state.pamtalk.predictor.routers[ESG.registered_name].champion
        real = champion.infer

        async def slow(inputs: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
            await asyncio.sleep(0.5)  # an injected slow model: requests stay in flight
            return await real(inputs, rows)

        champion.infer = slow  # type: ignore[method-assign]
        headers = next(iter(actors.values())).headers
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            scores = [
                asyncio.create_task(http.post("/v1/esg/score", json=profile(i), headers=headers))
                for i in range(6)
            ]
            await asyncio.sleep(0.2)  # two are in the model, four were turned away
            health = await http.get("/healthz")
            answers = await asyncio.gather(*scores)
            bad = await http.post(
                "/v1/esg/score",
                json=profile(9),
                headers={**headers, "X-Request-Timeout": "soon"},
            )
            timed_out = await http.post(
                "/v1/esg/score",
                json=profile(10),
                headers={**headers, "X-Request-Timeout": "0.05"},
            )
    assert health.status_code == 200
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 503, 503, 503, 503]
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert bad.status_code == 400 and "X-Request-Timeout" in bad.text
    # The slow model outlasts the client's 50 ms: a 504, not a late answer.
    assert timed_out.status_code == 504


@pytest.mark.services
async def test_an_exhausted_database_pool_is_a_503_not_a_pile_up(
    settings: Settings, actors: dict[object, Actor]
) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite has no connection pool to exhaust")
    small = settings.model_copy(
        update={"database_pool_size": 1, "database_pool_timeout_s": 0.2, "api_key_ttl": 0}
    )
    app = create_app(small)
    async with running(app), AsyncExitStack() as held:
        engine = app.state.pamtalk.engine
        for _ in range(2):  # the pool (1) and its overflow (1), both busy elsewhere
            await held.enter_async_context(engine.connect())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            headers = next(iter(actors.values())).headers
            answer = await http.get("/v1/farms", headers=headers)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "database_busy"
    assert answer.headers["Retry-After"] == "1"
