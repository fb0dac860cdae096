"""The reference methodology: hand-computed carbon, grades, weights, monotonicity, missing
inputs and the breakdown."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from pamtalk.models.esg import factors as F
from pamtalk.models.esg import methodology as M
from pamtalk.models.esg import profiles

GRID = 0.41565  # kg CO2 per kWh, Ember 2024 South Korea
DIESEL = 74_100 * 36.2e-6  # kg CO2 per litre


def small_farm(**changes: Any) -> dict[str, Any]:
    """One hectare of napa cabbage with every input reported."""
    farm: dict[str, Any] = {
        "crops": ["napa_cabbage"],
        "area_m2": 10_000,
        "organic": False,
        "certifications": ["gap"],
        "nitrogen_kg_per_ha": 100.0,
        "pesticide_kg_per_ha": 5.0,
        "diesel_l_per_year": 100.0,
        "electricity_kwh_per_year": 1_000.0,
        "renewable_share": 0.5,
        "water_m3_per_year": 3_000.0,
        "yield_kg_per_year": 10_000.0,
        "cover_crops": True,
        "reduced_tillage": False,
        "crop_rotation": True,
        "integrated_pest_management": True,
        "biodiversity_area_share": 0.05,
        "workers": 4,
        "fair_wage": True,
        "safety_training": True,
        "training_hours_per_worker": 10.0,
        "local_employment_share": 0.75,
        "accidents_per_year": 0,
        "record_keeping": True,
        "traceability": False,
        "transparency_reports": False,
    }
    farm.update(changes)
    return farm


@pytest.fixture(scope="module")
def farms() -> list[dict[str, Any]]:
    return profiles.generate(150, seed=7)


def test_n2o_of_100_kg_n() -> None:
    assert M.n2o_kg_co2e(100) == pytest.approx(100 * 0.01 * 44 / 28 * 273)  # 429 kg CO2e


def test_carbon_by_hand() -> None:
    c = M.carbon(M.reported(small_farm()), F.default())
    assert c is not None
    assert c.n2o_kg_co2e == pytest.approx(429.0)
    assert c.diesel_kg_co2e == pytest.approx(100 * DIESEL)  # 268.2 kg
    assert c.electricity_kg_co2e == pytest.approx(1_000 * 0.5 * GRID)  # 207.8 kg
    total = 429.0 + 100 * DIESEL + 500 * GRID
    assert c.total_kg_co2e == pytest.approx(total)
    assert c.intensity == pytest.approx(total / 10_000)
    assert c.benchmark == 0.3  # Brassicas, farm stage
    assert c.ratio == pytest.approx(total / 10_000 / 0.3)
    line = M.assess(small_farm()).breakdown["environmental"]["components"]["carbon_intensity"]
    assert line["points"] == pytest.approx(30 * math.log10(1 / c.ratio))  # 15.6 of 30


def test_carbon_scales_with_area_per_hectare_inputs() -> None:
    one = M.carbon(M.reported(small_farm()), F.default())
    two = M.carbon(M.reported(small_farm(area_m2=20_000)), F.default())
    assert one is not None and two is not None
    assert two.n2o_kg_co2e == pytest.approx(2 * one.n2o_kg_co2e)
    assert two.diesel_kg_co2e == one.diesel_kg_co2e  # per year, not per hectare


def test_multi_crop_benchmark_is_the_mean() -> None:
    c = M.carbon(M.reported(small_farm(crops=["rice", "apple"])), F.default())
    assert c is not None and c.benchmark == pytest.approx((3.6 + 0.2) / 2)


@pytest.mark.parametrize(
    ("overall", "expected"),
    [
        (100, "Platinum"),
        (90, "Platinum"),
        (89.999, "Gold"),
        (80, "Gold"),
        (79.99, "Silver"),
        (70, "Silver"),
        (69.99, "Bronze"),
        (60, "Bronze"),
        (59.99, "Candidate"),
        (0, "Candidate"),
    ],
)
def test_grade_boundaries(overall: float, expected: str) -> None:
    assert M.grade(overall) == expected


def test_weights_and_points_add_up() -> None:
    assert sum(M.WEIGHTS.values()) == pytest.approx(1.0)
    assert M.WEIGHTS == {"environmental": 0.40, "social": 0.35, "governance": 0.25}
    for table in (M.ENVIRONMENTAL_POINTS, M.SOCIAL_POINTS, M.GOVERNANCE_POINTS):
        assert sum(table.values()) == 100


def test_overall_is_the_weighted_sum(farms: list[dict[str, Any]]) -> None:
    for farm in farms:
        a = M.assess(farm)
        assert a.overall == pytest.approx(
            0.40 * a.environmental + 0.35 * a.social + 0.25 * a.governance
        )
        assert a.grade == M.grade(a.overall)
        for score in (a.environmental, a.social, a.governance, a.overall):
            assert 0 <= score <= 100


def test_the_breakdown_adds_up_and_is_json(farms: list[dict[str, Any]]) -> None:
    for farm in farms[:30]:
        a = M.assess(farm)
        for pillar in ("environmental", "social", "governance"):
            lines = a.breakdown[pillar]["components"]
            assert sum(c["points"] for c in lines.values()) == pytest.approx(getattr(a, pillar))
            for line in lines.values():
                assert {"points", "max_points", "value", "rule", "missing"} <= set(line)
                assert 0 <= line["points"] <= line["max_points"]
        json.dumps(a.breakdown, allow_nan=False)


def test_more_renewable_share_never_lowers_e(farms: list[dict[str, Any]]) -> None:
    for farm in farms:
        scores = [M.assess({**farm, "renewable_share": s / 10}).environmental for s in range(11)]
        assert scores == sorted(scores)
    assert scores[-1] > scores[0]


def test_fairer_practices_never_lower_s(farms: list[dict[str, Any]]) -> None:
    better = {
        "fair_wage": True,
        "safety_training": True,
        "training_hours_per_worker": 40.0,
        "local_employment_share": 1.0,
        "accidents_per_year": 0,
    }
    for farm in farms:
        before = M.assess(farm).social
        for key, value in better.items():
            after = M.assess({**farm, key: value}).social
            assert after >= before, key
        assert M.assess({**farm, **better}).social == 100.0


def test_withholding_an_input_never_raises_a_score(farms: list[dict[str, Any]]) -> None:
    for farm in farms[:40]:
        full = M.assess(farm)
        for key in M.INPUT_KEYS:
            partial = M.assess({k: v for k, v in farm.items() if k != key})
            for score in ("environmental", "social", "governance", "overall"):
                assert getattr(partial, score) <= getattr(full, score) + 1e-9, (key, score)


def test_nothing_reported_still_scores() -> None:
    a = M.assess({})
    assert (a.environmental, a.social, a.governance, a.overall) == (0, 0, 0, 0)
    assert a.grade == "Candidate"
    assert a.breakdown["missing"] == list(M.INPUT_KEYS)
    assert a.breakdown["missing_rule"] == M.MISSING_RULE


def test_a_missing_input_is_named_where_it_cost_points() -> None:
    farm = small_farm()
    del farm["diesel_l_per_year"]
    a = M.assess(farm)
    carbon = a.breakdown["environmental"]["components"]["carbon_intensity"]
    assert carbon["points"] == 0 and carbon["missing"] == ["diesel_l_per_year"]
    assert a.breakdown["environmental"]["missing"] == ["diesel_l_per_year"]
    assert a.breakdown["missing"] == ["diesel_l_per_year"]
    assert a.breakdown["carbon"] is None
    # Water does not need diesel: still scored.
    assert a.breakdown["environmental"]["components"]["water_use"]["points"] > 0


def test_none_and_nan_mean_missing_and_practices_may_be_nested() -> None:
    flat = small_farm(workers=None, training_hours_per_worker=math.nan)
    assert {"workers", "training_hours_per_worker"} <= set(M.assess(flat).breakdown["missing"])
    record = {k: v for k, v in small_farm().items() if k in M.FARM_KEYS}
    nested = {**record, "practices": {k: small_farm()[k] for k in M.PRACTICE_KEYS}}
    assert M.assess(nested).overall == M.assess(small_farm()).overall


def test_numpy_and_pandas_values_are_read() -> None:
    # Farms read from a data frame arrive as numpy scalars, with NaN for missing.
    farm = small_farm(workers=np.int64(4), fair_wage=np.bool_(True), reduced_tillage=np.nan)
    a = M.assess(farm)
    assert a.social == M.assess(small_farm()).social
    assert "reduced_tillage" in a.breakdown["missing"]


def test_missing_renewable_share_counts_as_grid_electricity() -> None:
    farm = small_farm()
    del farm["renewable_share"]
    c = M.carbon(M.reported(farm), F.default())
    assert c is not None and c.electricity_kg_co2e == pytest.approx(1_000 * GRID)


def test_zero_yield_scores_no_carbon_points_and_stays_json() -> None:
    a = M.assess(small_farm(yield_kg_per_year=0))
    line = a.breakdown["environmental"]["components"]["carbon_intensity"]
    assert line["points"] == 0 and line["value"] is None
    json.dumps(a.breakdown, allow_nan=False)


def test_unknown_crops_and_certifications_are_listed() -> None:
    a = M.assess(small_farm(crops=["dragonfruit"], certifications=["gap", "made_up"]))
    assert a.breakdown["unknown"] == {"crops": ["dragonfruit"], "certifications": ["made_up"]}
    assert a.breakdown["environmental"]["components"]["carbon_intensity"]["missing"] == ["crops"]
    assert a.breakdown["governance"]["components"]["certifications"]["points"] == 15


def test_certifications_are_capped() -> None:
    everything = list(M.CERTIFICATION_POINTS)
    assert M.certification_points(everything) == M.CERTIFICATION_CAP
    assert M.certification_points([]) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"nitrogen_kg_per_ha": -1},
        {"renewable_share": 1.5},
        {"workers": "many"},
        {"crops": "rice"},
        {"fair_wage": "yes"},
    ],
)
def test_invalid_inputs_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        M.assess(small_farm(**change))


def test_reported_reads_plain_and_numpy_values_by_the_same_rules() -> None:
    """Plain ints and floats take a fast path in reported(); numpy scalars the general one:
    both give the same values and refuse the same things."""
    farm = {
        "workers": 3,
        "fair_wage": 1,
        "organic": np.bool_(True),
        "renewable_share": np.float64(0.5),
        "diesel_l_per_year": float("nan"),
        "water_m3_per_year": np.float64("nan"),
        "area_m2": np.int64(7),
        "nitrogen_kg_per_ha": 0,
    }
    found = M.reported(farm)
    assert found == {
        "area_m2": 7.0,
        "organic": True,
        "nitrogen_kg_per_ha": 0.0,
        "renewable_share": 0.5,
        "workers": 3.0,
        "fair_wage": True,
    }
    assert type(found["workers"]) is float and type(found["fair_wage"]) is bool
    for bad, message in (
        ({"workers": -1}, "out of range"),
        ({"workers": np.float64(-1)}, "out of range"),
        ({"renewable_share": 1.5}, "out of range"),
        ({"crops": 3}, "list of slugs"),
        ({"workers": True}, "must be a number"),
        ({"organic": "yes"}, "true or false"),
    ):
        with pytest.raises(ValueError, match=message):
            M.reported(bad)
