"""/v1/jobs without a broker: the same job code runs in the API process."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from pamtalk.db.models import DemandForecast, EsgAssessment, Role
from tests.conftest import Actor, create_farm, finished


async def test_single_jobs_run_and_report_progress(
    app: Any, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer].headers
    started = await client.post(
        "/v1/jobs", json={"kind": "demand", "crop": "cabbage", "region": "jeju"}, headers=buyer
    )
    assert started.status_code == 202, started.text
    assert started.headers["Location"] == f"/v1/jobs/{started.json()['id']}"
    job = await finished(client, started.headers["Location"], buyer)
    assert job["status"] == "completed", job
    assert (job["chunks_done"], job["chunks_total"], job["rows_written"]) == (1, 1, 28)
    assert job["versions"] == {"pamtalk-demand": "1", "pamtalk-esg": "1"}

    # An ESG job records an assessment: the farm's owner starts it (tests/security: who may).
    owner = actors[Role.farmer].headers
    farm = await create_farm(client, actors[Role.farmer])
    esg = await client.post("/v1/jobs", json={"kind": "esg", "farm_id": farm["id"]}, headers=owner)
    assert esg.status_code == 202
    assert (await finished(client, esg.headers["Location"], owner))["rows_written"] == 1

    async with app.state.pamtalk.sessions.write() as session:
        assert await session.scalar(select(func.count()).select_from(DemandForecast)) == 28
        assert await session.scalar(select(func.count()).select_from(EsgAssessment)) == 1

    # Someone else's job is not found; an admin sees it.
    other = actors[Role.farmer].headers
    assert (await client.get(started.headers["Location"], headers=other)).status_code == 404
    admin = actors[Role.admin].headers
    assert (await client.get(started.headers["Location"], headers=admin)).status_code == 200


async def test_nightly_is_for_admins_and_bad_jobs_are_refused(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer, admin = actors[Role.buyer].headers, actors[Role.admin].headers
    nightly = {"kind": "nightly", "run_date": "2026-11-20"}
    assert (await client.post("/v1/jobs", json=nightly, headers=buyer)).status_code == 403
    for bad, code in (
        ({"kind": "demand", "crop": "durian", "region": "jeju"}, 422),
        ({"kind": "reindex"}, 422),
        ({"kind": "esg", "farm_id": 987654}, 404),
    ):
        assert (await client.post("/v1/jobs", json=bad, headers=buyer)).status_code == code
    assert (await client.get("/v1/jobs/987654", headers=admin)).status_code == 404
    started = await client.post("/v1/jobs", json=nightly, headers=admin)
    assert started.status_code == 202
    job = await finished(client, started.headers["Location"], admin)
    assert job["status"] == "completed" and job["rows_written"] == 510 * 28
