"""The feature vector and its mask."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from pamtalk.api.schemas.farms import FarmCreate, Practices
from pamtalk.models import contract
from pamtalk.models.esg import features as X
from pamtalk.models.esg import methodology as M
from pamtalk.models.esg import profiles
from tests.models.esg import per_row_features


def test_the_inputs_are_the_api_fields() -> None:
    assert tuple(Practices.model_fields) == M.PRACTICE_KEYS
    assert set(M.FARM_KEYS) <= set(FarmCreate.model_fields)
    assert len(X.FEATURES) == contract.ESG_FEATURES
    assert set(M.PRACTICE_KEYS) <= set(X.FEATURES)


def test_a_complete_farm_is_fully_reported() -> None:
    values, mask = X.encode(profiles.generate(1, seed=0)[0])
    assert values.shape == mask.shape == (contract.ESG_FEATURES,)
    assert values.dtype == mask.dtype == np.float32
    assert mask.tolist() == [1.0] * contract.ESG_FEATURES


def test_an_empty_farm_is_all_missing() -> None:
    values, mask = X.encode({})
    assert not values.any() and not mask.any()


def test_missing_inputs_are_zero_and_masked() -> None:
    farm = profiles.generate(1, seed=0)[0]
    del farm["diesel_l_per_year"]
    farm["certifications"] = None
    values, mask = X.encode(farm)
    off = {name for name, m in zip(X.FEATURES, mask, strict=True) if m == 0}
    certification_features = {f"certifications:{c}" for c in M.CERTIFICATION_POINTS}
    # The carbon ratio needs diesel; the one-hot certifications share one input.
    assert off == {"diesel_l_per_year", "carbon_ratio"} | certification_features
    assert not values[mask == 0].any()


def test_values_are_scaled_and_clipped() -> None:
    x, m = X.encode_many(profiles.generate(500, seed=2))
    assert x.shape == m.shape == (500, contract.ESG_FEATURES)
    assert x.min() >= 0 and x.max() <= X.CLIP
    assert np.median(x, axis=0).max() <= 1.0  # "roughly 0..1"
    extreme = {
        "nitrogen_kg_per_ha": 1000,
        "workers": 100_000,
        "crops": ["rice"],
        "area_m2": 100_000_000,
    }
    values, _ = X.encode(extreme)
    assert values.max() <= X.CLIP


def test_encode_many_of_nothing() -> None:
    x, m = X.encode_many([])
    assert x.shape == m.shape == (0, contract.ESG_FEATURES)


def test_models_never_import_the_api() -> None:
    code = (
        "import sys, pamtalk.models.esg.features, pamtalk.models.esg.network, "
        "pamtalk.models.esg.profiles, pamtalk.training.esg; "
        "print([m for m in sys.modules if m.startswith('pamtalk.api')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hide_equals_encoding_the_farm_without_those_inputs() -> None:
    farms = profiles.generate(200, seed=5)
    farms[0]["crops"] = ["dragonfruit"]  # a feature missing for its own reason stays missing
    values, mask = X.encode_many(farms)
    rng = np.random.default_rng(0)
    reported = (rng.random((len(farms), len(M.INPUT_KEYS))) > 0.3).astype(np.float32)
    hidden_values, hidden_mask = X.hide(values, mask, reported)
    dropped = [
        {k: v for k, v in farm.items() if k not in M.INPUT_KEYS or row[M.INPUT_KEYS.index(k)]}
        for farm, row in zip(farms, reported, strict=True)
    ]
    expected_values, expected_mask = X.encode_many(dropped)
    np.testing.assert_array_equal(hidden_mask, expected_mask)
    np.testing.assert_array_equal(hidden_values, expected_values)


def _with_gaps(farms: list[dict[str, object]], seed: int) -> list[dict[str, object]]:
    """The farms with about a third of their inputs withheld, some as None or NaN."""
    rng = np.random.default_rng(seed)
    out = []
    for farm in farms:
        kept = dict(farm)
        for key in list(kept):
            draw = rng.random()
            if draw < 0.25:
                del kept[key]
            elif draw < 0.3:
                kept[key] = None if draw < 0.275 else float("nan")
        out.append(kept)
    return out


EDGES: list[dict[str, object]] = [
    {},
    {"crops": ["not_a_crop"], "yield_kg_per_year": 10, "water_m3_per_year": 1},
    {"crops": [], "certifications": []},
    # No yield: a ratio of 0 (nothing used) or infinity (something used).
    {
        "crops": ["rice"],
        "area_m2": 0,
        "nitrogen_kg_per_ha": 0,
        "diesel_l_per_year": 0,
        "electricity_kwh_per_year": 0,
        "renewable_share": 1,
        "water_m3_per_year": 0,
        "yield_kg_per_year": 0,
    },
    {
        "crops": ["rice", "tangerine"],
        "area_m2": 10_000,
        "nitrogen_kg_per_ha": 3,
        "diesel_l_per_year": 1,
        "electricity_kwh_per_year": 1,
        "renewable_share": 0.5,
        "water_m3_per_year": 5,
        "yield_kg_per_year": 0,
    },
    {"workers": 0, "accidents_per_year": 3},
    {"workers": 10**7, "area_m2": 10**12, "diesel_l_per_year": float("inf")},
    {"practices": {"workers": 4, "fair_wage": True}, "workers": 2},
]


def test_the_vectorised_encoding_is_the_per_farm_one_bit_for_bit() -> None:
    """Every farm, complete, with gaps and at the edges, encoded all at once (batch scoring)
    and one at a time (online) gives exactly the values and mask of the per-farm encoder it
    replaced (tests/models/esg/per_row_features.py)."""
    complete = profiles.generate(2000, seed=7)
    farms = complete + _with_gaps(complete[:1000], seed=8) + EDGES
    expected = [per_row_features.encode(farm) for farm in farms]
    values, mask = X.encode_many(farms)
    assert values.view(np.uint32).tolist() == [e[0].view(np.uint32).tolist() for e in expected]
    assert mask.tolist() == [e[1].tolist() for e in expected]
    for farm, (want_values, want_mask) in zip(
        farms[::50] + EDGES, expected[::50] + expected[-len(EDGES) :], strict=True
    ):
        one_values, one_mask = X.encode(farm)
        assert one_values.view(np.uint32).tolist() == want_values.view(np.uint32).tolist()
        assert one_mask.tolist() == want_mask.tolist()


def test_no_farms_encode_to_empty_arrays() -> None:
    values, mask = X.encode_many([])
    assert values.shape == mask.shape == (0, contract.ESG_FEATURES)
