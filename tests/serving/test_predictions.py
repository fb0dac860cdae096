"""The prediction endpoints end to end on the local backend: trained, registered, promoted,
served, cached, and swapped to a new champion under load without a failed request."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from pamtalk.db.models import DemandDaily, EsgAssessment, Role
from pamtalk.registry import promote, store
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm
from tests.serving.conftest import new_version

AS_OF = date(2026, 3, 31)


def hits() -> float:
    labels = {"namespace": "predictions", "result": "hit"}
    return REGISTRY.get_sample_value("cache_requests_total", labels) or 0.0


async def add_demand(app: FastAPI, crop: str, region: str, days: int = 56) -> None:
    async with app.state.pamtalk.sessions.write() as session:
        for i in range(days):
            day = AS_OF - timedelta(days=i)
            grams = 200_000 + 30_000 * (day.weekday() < 5)
            session.add(
                DemandDaily(
                    crop=crop,
                    region=region,
                    day=day,
                    quantity_g=grams,
                    value_krw=grams * 3,
                    transactions=3,
                )
            )
        await session.commit()


async def test_demand_forecast_from_platform_data_then_cached(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await add_demand(app, "cabbage", "jeju")
    body = {"crop": "cabbage", "region": "jeju", "as_of": AS_OF.isoformat(), "horizon_days": 7}
    headers = actors[Role.buyer].headers
    first = await client.post("/v1/predictions/demand", json=body, headers=headers)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["model"], answer["version"], answer["history_source"]) == (
        "pamtalk-demand",
        "1",
        "platform",
    )
    assert [d["date"] for d in answer["forecast"]] == [
        (AS_OF + timedelta(days=h)).isoformat() for h in range(1, 8)
    ]
    assert all(min(d["p10"], d["p50"], d["p90"]) >= 0 for d in answer["forecast"])
    assert answer["forecast"][0]["p50"] > 0  # the series trades ~200 kg a day
    assert (answer["history_days"], answer["history_days_with_data"]) == (56, 56)
    assert answer["cached"] is False

    before = hits()
    again = await client.post("/v1/predictions/demand", json=body, headers=headers)
    assert again.status_code == 200 and again.json() == answer | {"cached": True}
    assert hits() == before + 1

    # The same window sent in the request: the same numbers, computed from the request.
    history = [
        {"quantity_kg": (200 + 30 * (d.weekday() < 5)), "price_krw_per_kg": 3000}
        for d in (AS_OF - timedelta(days=55 - i) for i in range(56))
    ]
    sent = await client.post(
        "/v1/predictions/demand", json=body | {"history": history}, headers=headers
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["history_source"] == "request"
    assert sent.json()["cached"] is False
    for ours, theirs in zip(sent.json()["forecast"], answer["forecast"], strict=True):
        assert abs(ours["p50"] - theirs["p50"]) <= 1e-3 * max(1.0, theirs["p50"])


async def test_a_series_without_data_says_so(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    body = {"crop": "Onion", "region": " ULSAN ", "as_of": AS_OF.isoformat(), "horizon_days": 3}
    response = await client.post(
        "/v1/predictions/demand", json=body, headers=actors[Role.buyer].headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["crop"], answer["region"]) == ("onion", "ulsan")  # slugs ignore case
    assert (answer["history_source"], answer["history_days_with_data"]) == ("none", 0)


async def test_demand_bad_requests(client: httpx.AsyncClient, actors: dict[Role, Actor]) -> None:
    headers = actors[Role.buyer].headers
    ok = {"crop": "cabbage", "region": "jeju"}
    for bad, status in (
        (ok | {"crop": "durian"}, 422),
        (ok | {"horizon_days": 29}, 422),
        (ok | {"as_of": (date.today() + timedelta(days=3)).isoformat()}, 422),
        (ok | {"history": [{"quantity_kg": 1}] * 10}, 422),
        (ok | {"history": [{"quantity_kg": -1}] * 56}, 422),
    ):
        response = await client.post("/v1/predictions/demand", json=bad, headers=headers)
        assert response.status_code == status, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
    anonymous = await client.post("/v1/predictions/demand", json=ok)
    assert anonymous.status_code == 401

    unknown = await client.post(
        "/v1/predictions/demand", json=ok | {"crop": "durian"}, headers=headers
    )
    error = unknown.json()["error"]
    assert error["message"].startswith("body.crop: unknown crop 'durian'; valid values: ")
    assert unknown.text.count("napa_cabbage") == 1  # listed once
    assert error["details"] == [
        {"loc": ["body", "crop"], "msg": "unknown crop 'durian'", "type": "unknown_value"}
    ]
    untyped = await client.post("/v1/predictions/demand", content=orjson.dumps(ok), headers=headers)
    assert untyped.status_code == 422
    assert "Content-Type: application/json" in untyped.json()["error"]["message"]


async def test_esg_scores_a_stored_farm_and_records_it(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farm = await create_farm(client, actors[Role.farmer])
    response = await client.post(  # by its owner: recorded (others: tests/security)
        "/v1/esg/score", json={"farm_id": farm["id"]}, headers=actors[Role.farmer].headers
    )
    assert response.status_code == 200, response.text
    scored = response.json()
    assert (scored["model"], scored["version"], scored["farm_id"]) == (
        "pamtalk-esg",
        "1",
        farm["id"],
    )
    for pillar in ("environmental", "social", "governance", "overall"):
        q = scored["scores"][pillar]
        assert 0 <= q["p10"] <= 100 and 0 <= q["p90"] <= 100
    assert 0 < scored["reported_share"] < 1
    assert scored["methodology"]["grade"]
    assert scored["cached"] is False
    _assert_readable(scored)
    async with app.state.pamtalk.sessions.write() as session:
        stored = await session.get(EsgAssessment, scored["assessment_id"])
        assert stored is not None
        assert (stored.farm_id, stored.model_version) == (farm["id"], "1")
        assert stored.overall == scored["scores"]["overall"]["p50"]


async def test_esg_profile_is_scored_not_stored(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    headers = actors[Role.buyer].headers
    profile = {"practices": {"nitrogen_kg_per_ha": 120, "workers": 3}, "crops": ["rice"]}
    response = await client.post("/v1/esg/score", json=profile, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["assessment_id"] is None
    async with app.state.pamtalk.sessions.write() as session:
        assert await session.scalar(select(func.count()).select_from(EsgAssessment)) == 0
    again = await client.post("/v1/esg/score", json=profile, headers=headers)
    assert again.json() == response.json() | {"cached": True}
    for bad, status, says in (
        ({}, 422, "the body had neither"),
        (profile | {"farm_id": 1}, 422, "not both"),
        ({"practices": {"renewable_share": 3}}, 422, "renewable_share"),
        ({"farm_id": 987654}, 404, "not found"),
    ):
        refused = await client.post("/v1/esg/score", json=bad, headers=headers)
        assert refused.status_code == status, (bad, refused.text)
        assert says in refused.json()["error"]["message"], refused.text


def _assert_readable(value: Any) -> None:
    """Every float of an answer is rounded as shown, and no server path is exposed."""
    if isinstance(value, dict):
        for item in value.values():
            _assert_readable(item)
    elif isinstance(value, list):
        for item in value:
            _assert_readable(item)
    elif isinstance(value, float):
        assert value == float(f"{value:.6g}"), value
    elif isinstance(value, str):
        assert "/tmp" not in value and "/shared/" not in value and "/work" not in value, value


async def test_new_champion_swaps_in_under_load_without_failures(
    app: FastAPI,
    client: httpx.AsyncClient,
    actors: dict[Role, Actor],
    settings: Settings,
    tmp_path: Path,
) -> None:
    registry = store.connect(settings)
    v2 = await asyncio.to_thread(new_version, registry, settings, "esg", tmp_path / "v2")
    headers = actors[Role.buyer].headers
    predictor = app.state.pamtalk.predictor
    phase = "before"  # which champion the service routes to when a request is sent
    seen: list[tuple[str, str, str]] = []  # (phase at send, at answer, version)
    failures: list[Any] = []
    stop = asyncio.Event()

    async def caller(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            # A fresh profile each time: a cache miss, so every call reaches a model.
            profile = {"practices": {"nitrogen_kg_per_ha": rng.uniform(0, 300), "workers": 2}}
            sent = phase
            response = await client.post("/v1/esg/score", json=profile, headers=headers)
            if response.status_code != 200:
                failures.append(response.text)
            else:
                seen.append((sent, phase, response.json()["version"]))

    callers = [asyncio.create_task(caller(i)) for i in range(8)]
    await asyncio.sleep(0.3)
    phase = "promoting"
    promote.promote(registry, "pamtalk-esg", v2)
    await predictor.sync("pamtalk-esg")
    phase = "promoted"
    await asyncio.sleep(0.3)
    phase = "rolling back"
    promote.rollback(registry, "pamtalk-esg")
    await predictor.sync("pamtalk-esg")
    phase = "rolled back"
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*callers)

    assert failures == []
    answered: dict[str, set[str]] = {}
    for sent, done, version in seen:
        if sent == done and sent not in ("promoting", "rolling back"):  # between swaps
            answered.setdefault(sent, set()).add(version)
    # Requests in flight across a swap finish on the version they leased (either is fine);
    # every request sent and answered between two swaps gets that period's champion.
    assert answered == {"before": {"1"}, "promoted": {v2}, "rolled back": {"1"}}


async def test_concurrent_identical_misses_run_one_inference(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await add_demand(app, "garlic", "gyeonggi")
    body = {"crop": "garlic", "region": "gyeonggi", "as_of": AS_OF.isoformat()}
    labels = {"model": "pamtalk-demand", "version": "1", "role": "champion"}
    before = REGISTRY.get_sample_value("predictions_total", labels) or 0.0
    # The same user: one routing key, so every request picks the same version.
    headers = actors[Role.buyer].headers
    answers = await asyncio.gather(
        *(client.post("/v1/predictions/demand", json=body, headers=headers) for _ in range(12))
    )
    assert {r.status_code for r in answers} == {200}
    assert len({r.content.replace(b'"cached":true', b'"cached":false') for r in answers}) == 1
    assert REGISTRY.get_sample_value("predictions_total", labels) == before + 1
