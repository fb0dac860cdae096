"""``database_connection_pool`` by state: in_use and idle follow the pool, and max (pool size
plus overflow) is what the DatabaseConnectionPoolExhausted alert divides by."""

from __future__ import annotations

from httpx import AsyncClient

from pamtalk.api.metrics import DB_POOL
from pamtalk.settings import Settings
from tests.conftest import ADMIN_KEY


def pool() -> dict[str, float]:
    return {s.labels["state"]: s.value for m in DB_POOL.collect() for s in m.samples}


async def test_the_pool_reports_its_states_and_its_bound(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.get("/v1/farms", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200
    states = pool()
    assert {"in_use", "idle", "max"} <= set(states)
    assert states["in_use"] + states["idle"] >= 1  # the request's connection, given back
    if settings.is_sqlite:  # SQLAlchemy's default queue pool for a SQLite file: 5 + 10
        assert states["max"] == 15
    else:
        assert states["max"] == 2 * settings.database_pool_size
    assert states["in_use"] <= states["max"]
