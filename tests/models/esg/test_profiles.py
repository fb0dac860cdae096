"""The farm-profile generator: deterministic, valid, at Korea's level of N use."""

from __future__ import annotations

import numpy as np
import pytest

from pamtalk.domain import CROPS, REGIONS
from pamtalk.models.esg import factors as F
from pamtalk.models.esg import methodology as M
from pamtalk.models.esg import profiles


def test_deterministic_under_a_seed() -> None:
    assert profiles.generate(50, seed=3) == profiles.generate(50, seed=3)
    assert profiles.generate(50, seed=3) != profiles.generate(50, seed=4)


def test_profiles_are_complete_and_valid() -> None:
    for farm in profiles.generate(300, seed=0):
        assert set(M.INPUT_KEYS) <= set(farm)
        assert farm["region"] in REGIONS
        assert farm["crops"] and set(farm["crops"]) <= set(CROPS)
        assert set(farm["certifications"]) <= set(M.CERTIFICATION_POINTS)
        assert farm["area_m2"] > 0
        M.reported(farm)  # raises on an out-of-range value


def test_every_region_and_crop_is_known() -> None:
    assert set(profiles.REGIONS) == set(REGIONS)
    assert set(profiles.CROP_PROFILES) == set(CROPS)
    for _, crops in profiles.REGIONS.values():
        assert set(crops) <= set(CROPS)


def test_nitrogen_follows_the_national_level() -> None:
    farms = profiles.generate(2_000, seed=1)
    national = F.default().fertiliser.value * profiles.N_SHARE  # ~172 kg N/ha
    mean = np.mean([f["nitrogen_kg_per_ha"] for f in farms])
    assert 0.6 * national < mean < 1.4 * national


def test_with_missing_drops_at_the_rate() -> None:
    farm = profiles.generate(1, seed=0)[0]
    rng = np.random.default_rng(0)
    assert profiles.with_missing(farm, 0.0, rng) == farm
    assert not set(M.PRACTICE_KEYS) & set(profiles.with_missing(farm, 1.0, rng))
    kept = [
        len(set(M.PRACTICE_KEYS) & set(profiles.with_missing(farm, 0.3, rng))) for _ in range(400)
    ]
    assert np.mean(kept) / len(M.PRACTICE_KEYS) == pytest.approx(0.7, abs=0.03)
    # The farm record stays unless asked for.
    assert set(M.FARM_KEYS) <= set(profiles.with_missing(farm, 1.0, rng))
