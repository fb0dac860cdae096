"""Finding 6: the authorization gaps. Only admins change a farm's status; an ESG score is
stored only for the farm's owner, admins and analysts; jobs are limited per user (one open
per kind and target, a daily quota) and in number running at once; a farm's exact location
and labour practices are for its owner, admins and analysts only (the cached list too);
sign-up does not tell whether an email is registered.

The role matrix of these rules extends tests/api/test_authorization.py's write-route matrix:
RULES below, one row per rule, one column per caller."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pamtalk.api.farm_view import LABOUR_PRACTICES, PRIVATE_FIELDS
from pamtalk.db.models import BatchJob, EsgAssessment, JobStatus, Role, User
from pamtalk.settings import Settings
from tests.conftest import Actor, ActorFactory, ModelStore, create_farm

ANON = "anonymous"
CALLERS = [ANON, "owner", "farmer", "buyer", "analyst", "admin"]

# rule -> what each caller gets. "owner" owns the farm; "farmer" is another farmer.
RULES: dict[str, dict[str, Any]] = {
    # PATCH {"status": "active"} on a farm an admin suspended
    "lift a suspension": {
        ANON: 401,
        "owner": 403,
        "farmer": 403,
        "buyer": 403,
        "analyst": 403,
        "admin": 200,
    },
    # POST /v1/esg/score {"farm_id"}: 200 for all; is the assessment stored?
    "ESG score is stored": {
        ANON: 401,
        "owner": True,
        "farmer": False,
        "buyer": False,
        "analyst": True,
        "admin": True,
    },
    # POST /v1/jobs {"kind": "esg", "farm_id"}: it records an assessment
    "start an ESG job": {
        ANON: 401,
        "owner": 202,
        "farmer": 403,
        "buyer": 403,
        "analyst": 202,
        "admin": 202,
    },
    # GET /v1/farms/{id} and GET /v1/farms: address, coordinates, labour practices shown?
    "see a farm's private fields": {
        ANON: 401,
        "owner": True,
        "farmer": False,
        "buyer": False,
        "analyst": True,
        "admin": True,
    },
}


@pytest.fixture
def serving_registry(model_store: ModelStore, tmp_path: Path) -> str:
    """Trained models: ESG scores and jobs need a champion."""
    return model_store.copy(tmp_path / "store")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"jobs_per_user_per_day": 3, "jobs_max_running": 1})


async def _caller(caller: str, owner: Actor, new_actor: ActorFactory) -> dict[str, str]:
    if caller == ANON:
        return {}
    return (owner if caller == "owner" else await new_actor(Role(caller))).headers


async def _assessments(app: FastAPI) -> int:
    async with app.state.pamtalk.sessions.write() as session:
        return int(await session.scalar(select(func.count()).select_from(EsgAssessment)) or 0)


def _shows_private(farm: dict[str, Any]) -> bool:
    hidden = all(farm[field] is None for field in PRIVATE_FIELDS)
    hidden = hidden and not LABOUR_PRACTICES & farm["practices"].keys()
    assert hidden == (farm["visibility"] == "public"), farm
    return not hidden


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("rule", list(RULES))
async def test_rule_by_role(
    app: FastAPI,
    client: httpx.AsyncClient,
    new_actor: ActorFactory,
    actors: dict[Role, Actor],
    rule: str,
    caller: str,
) -> None:
    owner = await new_actor(Role.farmer)
    farm = await create_farm(client, owner, address="제주시 애월읍 1")
    headers = await _caller(caller, owner, new_actor)
    expected = RULES[rule][caller]
    url = f"/v1/farms/{farm['id']}"

    if rule == "lift a suspension":
        admin = actors[Role.admin].headers
        suspended = await client.patch(url, json={"status": "suspended"}, headers=admin)
        assert suspended.status_code == 200, suspended.text
        answer = await client.patch(url, json={"status": "active"}, headers=headers)
        assert answer.status_code == expected, answer.text
        now = (await client.get(url, headers=admin)).json()["status"]
        assert now == ("active" if expected == 200 else "suspended")
    elif rule == "ESG score is stored":
        before = await _assessments(app)
        answer = await client.post("/v1/esg/score", json={"farm_id": farm["id"]}, headers=headers)
        if expected == 401:
            assert answer.status_code == 401
            return
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["stored"] is expected
        assert (body["assessment_id"] is not None) is expected
        assert await _assessments(app) == before + expected
        social = body["methodology"]["breakdown"]["social"]
        assert ("components" in social) is expected  # the labour practices' values
    elif rule == "start an ESG job":
        answer = await client.post(
            "/v1/jobs", json={"kind": "esg", "farm_id": farm["id"]}, headers=headers
        )
        assert answer.status_code == expected, answer.text
    else:
        one = await client.get(url, headers=headers)
        listed = await client.get(f"/v1/farms?owner_id={owner.id}", headers=headers)
        if expected == 401:
            assert (one.status_code, listed.status_code) == (401, 401)
            return
        assert _shows_private(one.json()) is expected
        assert [_shows_private(f) for f in listed.json()["items"]] == [expected]
        if expected:
            assert one.json()["latitude"] == 33.38 and one.json()["address"] == "제주시 애월읍 1"
            assert one.json()["practices"]["workers"] == 4


async def test_the_cached_farm_list_keeps_each_callers_view(
    client: httpx.AsyncClient, actors: dict[Role, Actor], new_actor: ActorFactory
) -> None:
    """An admin's read fills the cache with full farms; a buyer's next read of the same page
    (a cache hit) is still the public view, and the owner sees only their own in full."""
    owner = actors[Role.farmer]
    other = await new_actor(Role.farmer)
    mine = await create_farm(client, owner)
    theirs = await create_farm(client, other)
    views: dict[str, list[str]] = {}
    for name, headers in (
        ("admin", actors[Role.admin].headers),
        ("buyer", actors[Role.buyer].headers),
        ("owner", owner.headers),
        ("analyst", actors[Role.analyst].headers),
        ("buyer again", actors[Role.buyer].headers),
    ):
        page = (await client.get("/v1/farms", headers=headers)).json()["items"]
        assert [f["id"] for f in page] == [mine["id"], theirs["id"]]
        views[name] = [f["visibility"] for f in page]
    assert views == {
        "admin": ["full", "full"],
        "buyer": ["public", "public"],
        "owner": ["full", "public"],
        "analyst": ["full", "full"],
        "buyer again": ["public", "public"],
    }


async def _job(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/v1/jobs", json={"kind": "demand", **body}, headers=headers)


async def test_one_open_job_per_user_kind_and_target(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    admin, buyer = actors[Role.admin].headers, actors[Role.buyer].headers
    target = {"crop": "cabbage", "region": "jeju"}
    batch = app.state.pamtalk.batch
    async with batch._slots:  # the one running slot (jobs_max_running=1), as a long job holds it
        first = await _job(client, buyer, **target)
        assert first.status_code == 202, first.text
        first_id = first.json()["id"]
        # Duplicates, at once too, are refused naming the open (pending) one.
        for answer in await asyncio.gather(*(_job(client, buyer, **target) for _ in range(3))):
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["details"] == {"job_id": first_id}
            assert answer.headers["location"] == f"/v1/jobs/{first_id}"
            assert f"job {first_id}" in answer.json()["error"]["message"]
        nightly = await client.post("/v1/jobs", json={"kind": "nightly"}, headers=admin)
        assert nightly.status_code == 202, nightly.text
        again = await client.post("/v1/jobs", json={"kind": "nightly"}, headers=admin)
        assert again.status_code == 409, again.text
        # Another user, or another target, is a job of its own.
        assert (await _job(client, actors[Role.farmer].headers, **target)).status_code == 202
        assert (await _job(client, buyer, crop="carrot", region="jeju")).status_code == 202
    # Once the first has ended, the same target may run again.
    assert (await finished(client, first_id, buyer))["status"] == "completed"
    assert (await _job(client, buyer, **target)).status_code == 202


async def finished(client: httpx.AsyncClient, job_id: int, headers: dict[str, str]) -> Any:
    for _ in range(600):
        job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job did not finish: {job}")


async def test_a_daily_quota_of_jobs_per_user(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer].headers
    for crop in ("cabbage", "carrot", "radish"):  # the test's quota: 3
        assert (await _job(client, buyer, crop=crop, region="seoul")).status_code == 202
    over = await _job(client, buyer, crop="garlic", region="seoul")
    assert over.status_code == 429, over.text
    assert 0 < int(over.headers["retry-after"]) <= 86_400
    assert "PAMTALK_JOBS_PER_USER_PER_DAY" in over.json()["error"]["message"]
    # The quota is the user's own: another user still starts jobs.
    assert (
        await _job(client, actors[Role.analyst].headers, crop="garlic", region="seoul")
    ).status_code == 202


async def test_in_process_jobs_run_at_most_the_cap_at_once(
    app: FastAPI, client: httpx.AsyncClient, new_actor: ActorFactory
) -> None:
    """Five users' jobs at once: no more than PAMTALK_JOBS_MAX_RUNNING (here 1) ever run
    together, judged from when each started and ended."""
    ids = []
    for _ in range(5):
        user = await new_actor(Role.buyer)
        started = await _job(client, user.headers, crop="onion", region="busan")
        assert started.status_code == 202, started.text
        ids.append(started.json()["id"])
    await app.state.pamtalk.close_jobs()
    async with app.state.pamtalk.sessions.write() as session:
        jobs = list(await session.scalars(select(BatchJob).where(BatchJob.id.in_(ids))))
    assert all(job.status == JobStatus.completed for job in jobs)
    edges = sorted(
        [(job.started_at, 1) for job in jobs] + [(job.finished_at, -1) for job in jobs],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == app.state.pamtalk.settings.jobs_max_running == 1


async def test_sign_up_does_not_tell_whether_an_email_is_registered(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    taken = actors[Role.farmer].email
    new = await client.post(
        "/v1/users",
        json={
            "email": "new@farm.kr",
            "name": "새 농부",
            "password": "s3cret-pass",
            "role": "farmer",
        },
    )
    again = await client.post(
        "/v1/users",
        json={"email": taken, "name": "사칭", "password": "other-pass", "role": "buyer"},
    )
    assert (new.status_code, again.status_code) == (202, 202), again.text
    assert new.json().keys() == again.json().keys() == {"email", "message"}
    assert new.json()["message"] == again.json()["message"]
    assert again.json()["email"] == taken
    # The existing account is unchanged: its password, name and role stand.
    async with app.state.pamtalk.sessions.write() as session:
        user = await session.scalar(select(User).where(User.email == taken))
        assert user is not None and user.role == Role.farmer and user.name != "사칭"
    wrong = await client.post("/v1/auth/login", json={"email": taken, "password": "other-pass"})
    assert wrong.status_code == 401
    fresh = await client.post(
        "/v1/auth/login", json={"email": "new@farm.kr", "password": "s3cret-pass"}
    )
    assert fresh.status_code == 200, fresh.text
