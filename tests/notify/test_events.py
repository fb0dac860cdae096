"""Where events come from: transaction.created and farm.suspended (the owner) in the
change's transaction, batch.completed in the chunk's, model.promoted / model.rolled_back from
the model audit trail; each reaches its audience in the app."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.batching import jobs
from pamtalk.db.models import BatchChunk, BatchJob, JobStatus, Notification, OutboxEvent, Role
from pamtalk.notify import relay
from pamtalk.registry import events
from tests.conftest import Actor, create_farm


async def outbox(app: FastAPI) -> list[OutboxEvent]:
    async with app.state.pamtalk.sessions.write() as session:
        return list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at)))


async def inbox(app: FastAPI, user: Actor) -> list[str]:
    async with app.state.pamtalk.sessions.write() as session:
        query = select(Notification.type).where(Notification.user_id == user.id)
        return sorted(await session.scalars(query))


async def test_farm_suspension_tells_the_owner_once(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    owner, admin = actors[Role.farmer], actors[Role.admin]
    farm = await create_farm(client, owner)
    for _ in range(2):  # suspending a suspended farm is no new event
        response = await client.patch(
            f"/v1/farms/{farm['id']}", json={"status": "suspended"}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
    await client.patch(f"/v1/farms/{farm['id']}", json={"name": "x"}, headers=owner.headers)
    [event] = await outbox(app)
    assert event.type == "farm.suspended" and event.payload["farm_id"] == farm["id"]
    assert event.audience == {"users": [owner.id], "roles": []}
    await relay.publish_all(app.state.pamtalk.sessions)
    assert await inbox(app, owner) == ["farm.suspended"]
    assert await inbox(app, admin) == []


async def test_a_completed_batch_tells_admins_and_analysts(
    app: FastAPI, actors: dict[Role, Actor]
) -> None:
    async with app.state.pamtalk.sessions.write() as session:
        job = BatchJob(kind="esg", status=JobStatus.running, chunks_total=2)
        session.add(job)
        await session.flush()
        session.add_all([BatchChunk(job_id=job.id, index=i, kind="esg") for i in range(2)])
        await session.commit()
        for index in range(2):
            await jobs.finish_chunk(session, job.id, index, rows=5)
            await session.commit()
            assert [e.type for e in await outbox(app)] == ["batch.completed"] * index
    [event] = await outbox(app)
    assert event.payload["job_id"] == job.id and event.payload["rows"] == 10
    await relay.publish_all(app.state.pamtalk.sessions)
    for role in Role:
        expected = ["batch.completed"] if role in (Role.admin, Role.analyst) else []
        assert await inbox(app, actors[role]) == expected


async def test_model_promotions_and_rollbacks(app: FastAPI, actors: dict[Role, Actor]) -> None:
    """The API's relay subscribes to the model audit trail while it runs."""
    sessions = app.state.pamtalk.sessions
    for action in ("promote", "canary", "rollback", "rollout_rolled_back", "rollout_step"):
        await events.publish(
            sessions, None, model="pamtalk-esg", action=action, actor="test", to_version="2"
        )
    found = await outbox(app)
    assert [e.type for e in found] == ["model.promoted", "model.rolled_back", "model.rolled_back"]
    assert [e.payload["action"] for e in found] == ["promote", "rollback", "rollout_rolled_back"]
    await relay.publish_all(sessions)
    assert await inbox(app, actors[Role.analyst]) == sorted(e.type for e in found)
    assert await inbox(app, actors[Role.farmer]) == []
