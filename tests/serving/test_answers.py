"""One answers layer: the nightly batch and the REST endpoints give the same numbers and
grades at the same model version, and a grade is the grade of the score as shown."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pamtalk.db import seed
from pamtalk.db.models import DemandDaily, DemandForecast, EsgAssessment, Farm, Role
from pamtalk.models.contract import ESG_FEATURES, ESG_SCORES
from pamtalk.models.esg.methodology import FLOOR_GRADE, GRADES, grade
from pamtalk.serving import answers
from tests.conftest import Actor
from tests.serving.test_jobs_api import finished

SMALL = seed.SeedSize(farms=24, buyers=6, analysts=1, transactions=3000, days=70)
RUN_DATE = date(2026, 11, 20)  # fixed: the same data, hence the same numbers, every run


def _scores(overall: float) -> np.ndarray:
    """One farm's [4 pillars, 3 quantiles] with the overall p50 at ``overall``."""
    scores = np.full((1, len(ESG_SCORES), 3), 50.0, dtype=np.float32)
    scores[0, ESG_SCORES.index("overall"), 1] = overall
    return scores


@pytest.mark.parametrize("cut", [threshold for threshold, _ in GRADES])
@pytest.mark.parametrize("offset", [-0.006, -0.005, -0.004, 0.0, 0.004])
def test_a_grade_is_the_grade_of_the_score_shown(cut: float, offset: float) -> None:
    mask = np.ones((1, ESG_FEATURES), np.float32)
    (answer,) = answers.esg_answers(_scores(cut + offset), mask)
    shown = answer.scores["overall"]["p50"]
    assert shown == round(float(np.float32(cut + offset)), 2)
    assert answer.grade == grade(shown)
    row = answers.assessment(answer, {})
    assert (row["overall"], row["grade"]) == (shown, answer.grade)
    # 79.996 shows as 80.0 and is graded as 80.0; 79.994 shows as 79.99, one grade lower.
    assert (answer.grade == grade(cut)) == (shown >= cut)


def test_scores_are_clipped_before_they_are_graded() -> None:
    mask = np.zeros((2, ESG_FEATURES), np.float32)
    mask[0, :17] = 1
    low, high = answers.esg_answers(np.concatenate([_scores(-3.0), _scores(130.0)]), mask)
    assert (low.scores["overall"]["p50"], low.grade) == (0.0, FLOOR_GRADE)
    assert (high.scores["overall"]["p50"], high.grade) == (100.0, GRADES[0][1])
    assert (low.reported_share, high.reported_share) == (0.5, 0.0)


def test_demand_quantiles_are_never_negative_and_kept_to_the_gram() -> None:
    outputs = np.array([[[-1.0, 2.00049, 3.1234567]] * 28], dtype=np.float32)
    quantiles = answers.demand_quantiles(outputs, 3)
    assert quantiles.shape == (1, 3, 3)
    assert quantiles[0, 0].tolist() == [0.0, 2.0, 3.123]
    forecast = answers.demand_forecast(quantiles[0], date(2026, 11, 30))
    assert forecast[0] == {"date": "2026-12-01", "p10": 0.0, "p50": 2.0, "p90": 3.123}
    assert [f["date"] for f in forecast] == ["2026-12-01", "2026-12-02", "2026-12-03"]


async def test_batch_and_rest_agree_on_every_seeded_farm_and_series(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    as_of = RUN_DATE - timedelta(days=1)  # the nightly job's last complete day
    async with app.state.pamtalk.sessions.write() as session:
        await seed.seed(session, SMALL, today=RUN_DATE)
        farm_ids = list(await session.scalars(select(Farm.id).order_by(Farm.id)))
        traded = (
            await session.execute(
                select(DemandDaily.crop, DemandDaily.region)
                .where(DemandDaily.day > as_of - timedelta(days=56))
                .distinct()
            )
        ).all()
    assert len(farm_ids) == SMALL.farms and traded

    # The analyst sees what the batch stored, the social breakdown included.
    admin, analyst = actors[Role.admin].headers, actors[Role.analyst].headers
    started = await client.post(
        "/v1/jobs", json={"kind": "nightly", "run_date": RUN_DATE.isoformat()}, headers=admin
    )
    assert started.status_code == 202, started.text
    job = await finished(client, started.headers["Location"], admin)
    assert job["status"] == "completed", job

    async with app.state.pamtalk.sessions.write() as session:
        batch_esg = {
            row.farm_id: row
            for row in await session.scalars(
                select(EsgAssessment).where(EsgAssessment.batch_job_id == job["id"])
            )
        }
        batch_demand: dict[tuple[str, str], list[DemandForecast]] = {}
        for row in await session.scalars(
            select(DemandForecast)
            .where(DemandForecast.batch_job_id == job["id"])
            .order_by(DemandForecast.target_date)
        ):
            batch_demand.setdefault((row.crop, row.region), []).append(row)
    assert sorted(batch_esg) == farm_ids

    for farm_id in farm_ids:
        response = await client.post("/v1/esg/score", json={"farm_id": farm_id}, headers=analyst)
        assert response.status_code == 200, response.text
        online: dict[str, Any] = response.json()
        stored = batch_esg[farm_id]
        assert online["version"] == stored.model_version == job["versions"]["pamtalk-esg"]
        assert {p: online["scores"][p]["p50"] for p in ESG_SCORES} == {
            p: getattr(stored, p) for p in ESG_SCORES
        }
        assert online["grade"] == stored.grade
        assert stored.breakdown == {"model": online["scores"], "methodology": online["methodology"]}

    for crop, region in traded:
        body = {"crop": crop, "region": region, "as_of": as_of.isoformat(), "horizon_days": 28}
        response = await client.post("/v1/predictions/demand", json=body, headers=analyst)
        assert response.status_code == 200, response.text
        online = response.json()
        assert online["version"] == job["versions"]["pamtalk-demand"]
        assert online["forecast"] == [
            {"date": r.target_date.isoformat(), "p10": r.p10_kg, "p50": r.p50_kg, "p90": r.p90_kg}
            for r in batch_demand[(crop, region)]
        ]
