"""/v1/models and progressive rollouts on real traffic: the routes by role, each refusal,
rollouts that promote, roll back on errors and on latency, survive a restart, and are never
double-stepped by two drivers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from mlflow import MlflowClient
from sqlalchemy import func, select

from pamtalk.api.app import create_app
from pamtalk.db.models import ModelEvent, Role
from pamtalk.errors import PamtalkError
from pamtalk.models.contract import ESG, ModelContract
from pamtalk.registry import promote, rollouts, store
from pamtalk.serving.deployment import Backend, Deployment, LocalBackend
from pamtalk.serving.runtime import Artifact
from pamtalk.settings import Settings
from tests.conftest import Actor, ActorFactory, running
from tests.serving.conftest import new_version

ESG_NAME = ESG.registered_name
ANON = "anonymous"
ROLES = ["farmer", "buyer", "analyst", "admin"]
# Write routes, each with a request whose answer does not depend on the caller once allowed.
ALLOWED: dict[tuple[str, str], tuple[Any, int]] = {
    ("POST", "/v1/models/{name}/promote"): ({"version": "999"}, 404),
    ("POST", "/v1/models/{name}/rollback"): ({}, 409),  # no previous champion
    ("PUT", "/v1/models/{name}/canary"): ({"version": "999", "percent": 5}, 404),
    ("DELETE", "/v1/models/{name}/canary"): (None, 200),
    ("POST", "/v1/models/{name}/rollouts"): ({"version": "999"}, 404),
    ("POST", "/v1/models/{name}/rollouts/{rollout_id}/{command}"): (None, 404),
}
MATRIX = {
    route: {ANON: 401, "farmer": 403, "buyer": 403, "analyst": ok, "admin": ok}
    for route, (_, ok) in ALLOWED.items()
}
READS = [
    "/v1/models",
    "/v1/models/{name}",
    "/v1/models/{name}/versions/1",
    "/v1/models/{name}/rollouts",
    "/v1/models/{name}/events",
]


@pytest.mark.parametrize("caller", [ANON, *ROLES])
@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
async def test_model_write_route_by_role(
    client: httpx.AsyncClient, new_actor: ActorFactory, route: tuple[str, str], caller: str
) -> None:
    headers = {} if caller == ANON else (await new_actor(Role(caller))).headers
    method, template = route
    path = template.format(name=ESG_NAME, rollout_id=1, command="pause")
    body, _ = ALLOWED[route]
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == MATRIX[route][caller], response.text
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


@pytest.mark.parametrize("caller", [ANON, *ROLES])
async def test_model_reads_are_for_admins_and_analysts(
    client: httpx.AsyncClient, new_actor: ActorFactory, caller: str
) -> None:
    headers = {} if caller == ANON else (await new_actor(Role(caller))).headers
    expected = {ANON: 401, "farmer": 403, "buyer": 403}.get(caller, 200)
    for template in READS:
        response = await client.get(template.format(name=ESG_NAME), headers=headers)
        assert response.status_code == expected, (template, response.text)


async def test_list_and_describe(client: httpx.AsyncClient, actors: dict[Role, Actor]) -> None:
    headers = actors[Role.analyst].headers
    models = (await client.get("/v1/models", headers=headers)).json()
    esg = next(m for m in models if m["name"] == ESG_NAME)
    assert esg["champion"] == "1" and esg["challenger"] is None
    assert esg["versions"][0]["aliases"] == ["champion"]
    assert "mae_complete" in esg["versions"][0]["metrics"]
    assert esg["loaded"] == [
        {"version": "1", "role": "champion", "precision": "int8", "device": "cpu"}
    ]
    detail = (await client.get(f"/v1/models/{ESG_NAME}/versions/1", headers=headers)).json()
    assert detail["run_id"] and [g["gate"] for g in detail["gates"]] == [
        "loads",
        "contract",
        "finite",
        "metric",
        "latency",
    ]
    assert all(g["ok"] for g in detail["gates"] if g["gate"] != "latency")
    for path in ("/v1/models/pamtalk-nothing", f"/v1/models/{ESG_NAME}/versions/42"):
        assert (await client.get(path, headers=headers)).status_code == 404


async def test_promote_refusals_and_the_audit_trail(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    settings: Settings,
    tmp_path: Path,
) -> None:
    headers, analyst = actors[Role.analyst].headers, actors[Role.analyst]
    url = f"/v1/models/{ESG_NAME}"
    already = await client.post(f"{url}/promote", json={"version": "1"}, headers=headers)
    assert already.status_code == 409 and "already the champion" in already.text
    unknown = await client.post(f"{url}/promote", json={"version": "42"}, headers=headers)
    assert unknown.status_code == 404

    registry = store.connect(settings)
    worse = await asyncio.to_thread(_worse_copy_of_the_champion, registry)
    refused = await client.post(f"{url}/promote", json={"version": worse}, headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {"gate": "metric"}
    assert "metric gate" in refused.json()["error"]["message"]

    v3 = await asyncio.to_thread(new_version, registry, settings, "esg", tmp_path / "v3")
    promoted = await client.post(
        f"{url}/promote", json={"version": v3, "reason": "retrained"}, headers=headers
    )
    assert promoted.status_code == 200, promoted.text
    back = await client.post(f"{url}/rollback", json={"reason": "oops"}, headers=headers)
    assert back.status_code == 200 and back.json()["to_version"] == "1"

    trail = (await client.get(f"{url}/events", headers=headers)).json()
    assert [(e["action"], e["from_version"], e["to_version"]) for e in trail] == [
        ("rollback", v3, "1"),
        ("promote", "1", v3),
    ]
    assert trail[1]["actor"] == f"user:{analyst.id} (analyst)" and trail[1]["reason"] == "retrained"
    tags = registry.get_model_version(ESG_NAME, v3).tags
    assert any(v.startswith("promote by user:") for k, v in tags.items() if "event" in k)


def _worse_copy_of_the_champion(client: MlflowClient) -> str:
    """The champion's ONNX file registered again under a run that measured it 3x worse:
    what the metric gate must refuse (the gate reads the run's metrics)."""
    champion = client.get_model_version_by_alias(ESG_NAME, "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    run = client.create_run(client.get_run(champion.run_id).info.experiment_id)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, 3 * value)
    client.set_terminated(run.info.run_id)
    worse = client.create_model_version(ESG_NAME, champion.source, run_id=run.info.run_id)
    return str(worse.version)


# -- rollouts on real traffic ----------------------------------------------------------------


class FaultyBackend:
    """The local backend, with a fault injected into one version: every call fails, or takes
    ``delay`` seconds longer. Everything else is the real ONNX Runtime path."""

    def __init__(self, settings: Settings) -> None:
        self.inner = LocalBackend(settings)
        self.faults: dict[str, tuple[bool, float]] = {}

    async def deploy(self, artifact: Artifact, contract: ModelContract) -> Deployment:
        deployment = await self.inner.deploy(artifact, contract)
        fail, delay = self.faults.get(artifact.version, (False, 0.0))
        if fail or delay:
            real = deployment.infer

            async def infer(inputs: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
                await asyncio.sleep(delay)
                if fail:
                    raise PamtalkError("injected fault")  # a 500
                return await real(inputs, rows)

            deployment.infer = infer  # type: ignore[method-assign]
        return deployment

    async def close(self) -> None:
        await self.inner.close()


@asynccontextmanager
async def api(settings: Settings, backend: Backend | None = None) -> AsyncIterator[FastAPI]:
    """Another API process on the same database and registry (its own predictor)."""
    application = create_app(settings)
    async with running(application):
        if backend is not None:
            application.state.pamtalk.predictor.backend = backend
        yield application


async def traffic(app: FastAPI, users: list[Actor], requests: int) -> None:
    """ESG scores from many users (the canary is sticky per user), each a cache miss."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for i in range(requests):
            user = users[i % len(users)]
            profile = {"practices": {"nitrogen_kg_per_ha": random.uniform(0, 300), "workers": 3}}
            await http.post("/v1/esg/score", json=profile, headers=user.headers)


async def drive(app: FastAPI, settings: Settings) -> None:
    """One driver tick as the background task does it: flush, judge, follow the registry."""
    state = app.state.pamtalk
    await state.predictor.live.flush(state.sessions)
    await rollouts.tick(store.connect(settings), state.sessions)
    await state.predictor.sync(ESG_NAME)


async def start(app: FastAPI, settings: Settings, version: str, **plan: Any) -> int:
    client = store.connect(settings)
    rollout = await rollouts.start(
        client,
        app.state.pamtalk.sessions,
        ESG_NAME,
        version,
        rollouts.Plan(**plan),
        actor="test",
    )
    await app.state.pamtalk.predictor.sync(ESG_NAME)
    return rollout.id


async def state_of(app: FastAPI, rollout_id: int) -> Any:
    return await rollouts.get(app.state.pamtalk.sessions, ESG_NAME, rollout_id)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every API process of these tests is driven by the tests, for determinism."""
    return settings.model_copy(update={"rollout_tick_s": 0, "serving_counters_flush_s": 3600})


@pytest.fixture
def rollout_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
async def users(new_actor: ActorFactory) -> list[Actor]:
    return [await new_actor(Role.buyer) for _ in range(12)]


async def test_a_rollout_on_real_traffic_promotes(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    rollout_settings: Settings,
    users: list[Actor],
    tmp_path: Path,
) -> None:
    registry = store.connect(rollout_settings)
    v2 = await asyncio.to_thread(new_version, registry, rollout_settings, "esg", tmp_path / "v2")
    headers = actors[Role.admin].headers
    body = {"version": v2, "steps": [50, 100], "step_seconds": 0.2, "min_requests": 5}
    body["gates"] = {"max_p99_ratio": 50.0}  # tiny models: latency noise is all there is
    async with api(rollout_settings) as worker:
        transport = httpx.ASGITransport(app=worker)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            created = await http.post(f"/v1/models/{ESG_NAME}/rollouts", json=body, headers=headers)
            assert created.status_code == 201, created.text
            rollout_id = created.json()["id"]
            await worker.state.pamtalk.predictor.sync(ESG_NAME)
            for _ in range(40):
                await traffic(worker, users, 24)
                await asyncio.sleep(0.2)
                await drive(worker, rollout_settings)
                found = await state_of(worker, rollout_id)
                if found.state != "running":
                    break
            status = (
                await http.get(f"/v1/models/{ESG_NAME}/rollouts/{rollout_id}", headers=headers)
            ).json()
    assert status["state"] == "promoted", status
    assert [r["percent"] for r in status["readings"]] == [50, 100]
    first = status["readings"][0]["gates"]
    assert first["challenger_requests"] >= 5 and first["champion_requests"] > 0
    assert first["gates"]["error_rate"]["ok"] and first["gates"]["p99_ratio"]["ok"]
    plan = promote.rollout(registry, ESG_NAME)
    assert (plan.champion, plan.challenger) == (v2, None)
    trail = (await client.get(f"/v1/models/{ESG_NAME}/events", headers=headers)).json()
    actions = [e["action"] for e in reversed(trail)]
    assert actions == ["canary", "rollout_started", "rollout_step", "promote"]


@pytest.mark.parametrize("fault", ["errors", "slow"])
async def test_a_failing_gate_rolls_back_at_once(
    app: FastAPI,
    rollout_settings: Settings,
    users: list[Actor],
    tmp_path: Path,
    fault: str,
) -> None:
    registry = store.connect(rollout_settings)
    v2 = await asyncio.to_thread(new_version, registry, rollout_settings, "esg", tmp_path / "v2")
    backend = FaultyBackend(rollout_settings)
    backend.faults[v2] = (True, 0.0) if fault == "errors" else (False, 0.06)
    async with api(rollout_settings, backend) as worker:
        rollout_id = await start(
            worker, rollout_settings, v2, steps=[50, 100], step_seconds=0.2, min_requests=10
        )
        for _ in range(30):
            await traffic(worker, users, 24)
            await asyncio.sleep(0.2)
            await drive(worker, rollout_settings)
            if (await state_of(worker, rollout_id)).state != "running":
                break
        found = await state_of(worker, rollout_id)
    assert found.state == "rolled_back", found.readings
    assert found.step == 0  # never got past the first step
    assert ("error rate" if fault == "errors" else "p99") in (found.reason or "")
    plan = promote.rollout(registry, ESG_NAME)
    assert (plan.champion, plan.challenger, plan.percent) == ("1", None, 0)


async def test_a_rollout_survives_a_restart_mid_step(
    app: FastAPI, rollout_settings: Settings, users: list[Actor], tmp_path: Path
) -> None:
    registry = store.connect(rollout_settings)
    v2 = await asyncio.to_thread(new_version, registry, rollout_settings, "esg", tmp_path / "v2")
    plan = {"steps": [50, 100], "step_seconds": 0.2, "min_requests": 5}
    gates = rollouts.Gates(max_p99_ratio=50.0)
    async with api(rollout_settings) as first:
        rollout_id = await start(first, rollout_settings, v2, gates=gates, **plan)
        await traffic(first, users, 24)
        await first.state.pamtalk.predictor.live.flush(first.state.pamtalk.sessions)
    # The first process is gone mid-step; a new one carries on from the database.
    async with api(rollout_settings) as second:
        await second.state.pamtalk.predictor.sync(ESG_NAME)
        assert (await state_of(second, rollout_id)).state == "running"
        for _ in range(40):
            await traffic(second, users, 24)
            await asyncio.sleep(0.2)
            await drive(second, rollout_settings)
            if (await state_of(second, rollout_id)).state != "running":
                break
        assert (await state_of(second, rollout_id)).state == "promoted"


async def test_two_drivers_never_double_step(
    app: FastAPI, rollout_settings: Settings, users: list[Actor], tmp_path: Path
) -> None:
    registry = store.connect(rollout_settings)
    v2 = await asyncio.to_thread(new_version, registry, rollout_settings, "esg", tmp_path / "v2")
    gates = rollouts.Gates(max_p99_ratio=50.0)
    async with api(rollout_settings) as one, api(rollout_settings) as two:
        rollout_id = await start(
            one,
            rollout_settings,
            v2,
            steps=[10, 50, 100],
            step_seconds=0.2,
            min_requests=5,
            gates=gates,
        )
        await two.state.pamtalk.predictor.sync(ESG_NAME)
        for _ in range(40):
            await asyncio.gather(traffic(one, users, 16), traffic(two, users, 16))
            await asyncio.sleep(0.2)
            # Both workers judge the same rollout at the same moment.
            await asyncio.gather(drive(one, rollout_settings), drive(two, rollout_settings))
            if (await state_of(one, rollout_id)).state != "running":
                break
        found = await state_of(one, rollout_id)
        async with one.state.pamtalk.sessions.write() as session:
            steps = await session.scalar(
                select(func.count()).where(ModelEvent.action == "rollout_step")
            )
            promotions = await session.scalar(
                select(func.count()).where(ModelEvent.action == "promote")
            )
    assert found.state == "promoted"
    assert [r["percent"] for r in found.readings] == [10, 50, 100]
    assert (steps, promotions) == (2, 1)


async def test_a_hand_made_alias_change_stops_the_rollout(
    app: FastAPI, rollout_settings: Settings, tmp_path: Path
) -> None:
    registry = store.connect(rollout_settings)
    v2 = await asyncio.to_thread(new_version, registry, rollout_settings, "esg", tmp_path / "v2")
    rollout_id = await start(app, rollout_settings, v2, steps=[50, 100], step_seconds=60)
    promote.promote(registry, ESG_NAME, v2)  # a data scientist in the MLflow UI
    await drive(app, rollout_settings)
    found = await state_of(app, rollout_id)
    assert found.state == "aborted" and "premise changed" in (found.reason or "")
    assert promote.rollout(registry, ESG_NAME).champion == v2  # their change stands


async def test_rollout_refusals_and_controls(
    client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings, tmp_path: Path
) -> None:
    headers = actors[Role.admin].headers
    url = f"/v1/models/{ESG_NAME}/rollouts"
    for bad in ({"version": "1"}, {"version": "1", "steps": [50, 25, 100]}):
        refused = await client.post(url, json=bad, headers=headers)
        assert refused.status_code in (400, 409), refused.text
    registry = store.connect(settings)
    v2 = await asyncio.to_thread(new_version, registry, settings, "esg", tmp_path / "v2")
    created = await client.post(url, json={"version": v2, "steps": [5, 100]}, headers=headers)
    assert created.status_code == 201
    rollout = created.json()
    again = await client.post(url, json={"version": v2}, headers=headers)
    assert again.status_code == 409 and "already has rollout" in again.text
    assert promote.rollout(registry, ESG_NAME).percent == 5
    for command, expected in (("resume", 409), ("pause", 200), ("resume", 200), ("abort", 200)):
        answer = await client.post(f"{url}/{rollout['id']}/{command}", headers=headers)
        assert answer.status_code == expected, (command, answer.text)
    assert answer.json()["state"] == "aborted"
    assert promote.rollout(registry, ESG_NAME).challenger is None


async def test_a_shadow_rollout_rolls_back_on_divergence(
    app: FastAPI, rollout_settings: Settings, users: list[Actor], tmp_path: Path
) -> None:
    """In shadow mode the champion answers everything and the challenger scores copies; a
    challenger whose answers drift from the champion's past the limit is rolled back."""
    from pamtalk.registry import publish

    registry = store.connect(rollout_settings)
    _, v2 = await asyncio.to_thread(  # one epoch: other numbers than the champion's
        publish.train_and_register,
        registry,
        rollout_settings,
        "esg",
        out_dir=tmp_path / "v2",
        tiny=True,
        epochs=1,
    )
    gates = rollouts.Gates(max_p99_ratio=50.0, max_shadow_divergence=1e-6)
    async with api(rollout_settings) as worker:
        rollout_id = await start(
            worker,
            rollout_settings,
            v2,
            steps=[50, 100],
            step_seconds=0.2,
            min_requests=5,
            gates=gates,
            shadow=True,
        )
        for _ in range(30):
            await traffic(worker, users, 24)
            await asyncio.sleep(0.3)  # shadow scoring runs in the background
            await drive(worker, rollout_settings)
            if (await state_of(worker, rollout_id)).state != "running":
                break
        found = await state_of(worker, rollout_id)
    assert found.state == "rolled_back", found.readings
    assert "shadow divergence" in (found.reason or "")
    divergence = found.readings[-1]["gates"]["gates"]["shadow_divergence"]
    assert divergence["value"] > divergence["limit"]
