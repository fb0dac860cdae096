"""Realistic Korean farm profiles to train and evaluate the ESG model on.

    farms = generate(1000, seed=0)          # complete profiles, shaped like assess() input
    partial = with_missing(farms[0], 0.3, rng)

The level of nitrogen use comes from the data: South Korea's fertiliser use per hectare
(factors.fertiliser, FAO & Federico via OWID) times the N share of it, spread over crops by
their relative N demand. Everything else is a generator assumption, stated here: crops by
region follow where Korea grows them; yields, water and labour are typical magnitudes, not
statistics. One latent "diligence" per farm (Beta(2, 2)) makes good practices travel
together, as they do on real farms; this correlation is what lets the model estimate a
missing input from the reported ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamtalk.models.esg import factors as F
from pamtalk.models.esg.methodology import PRACTICE_KEYS

Farm = dict[str, Any]

# Share of N in Korea's N + P2O5 + K2O use (assumption: N is a little under half of the
# nutrients applied in East Asian cropping).
N_SHARE = 0.45
# The crops' relative N demands below are scaled so that this is the national level.
REFERENCE_N_KG_PER_HA = 170.0


@dataclass(frozen=True)
class CropProfile:
    yield_t_per_ha: float  # typical fresh-weight yield
    n_kg_per_ha: float  # relative N demand (scaled to the national level)
    water_m3_per_ha: float  # irrigation applied
    covered: float  # probability that it grows under cover (greenhouse / indoor)
    workers_per_ha: float  # hired labour intensity


CROP_PROFILES: dict[str, CropProfile] = {
    "rice": CropProfile(6.5, 110, 12_000, 0.0, 0.1),
    "barley": CropProfile(3.5, 90, 500, 0.0, 0.1),
    "soybean": CropProfile(2.0, 30, 1_000, 0.0, 0.15),
    "tangerine": CropProfile(25, 150, 2_000, 0.15, 0.8),
    "apple": CropProfile(25, 120, 2_500, 0.0, 0.8),
    "pear": CropProfile(25, 130, 2_500, 0.0, 0.8),
    "grape": CropProfile(15, 100, 2_000, 0.3, 1.0),
    "peach": CropProfile(15, 110, 2_000, 0.0, 0.9),
    "persimmon": CropProfile(15, 100, 1_500, 0.0, 0.6),
    "strawberry": CropProfile(30, 200, 6_000, 0.95, 2.5),
    "watermelon": CropProfile(40, 180, 4_000, 0.7, 1.2),
    "korean_melon": CropProfile(30, 180, 4_000, 0.95, 2.0),
    "napa_cabbage": CropProfile(70, 250, 3_000, 0.05, 0.5),
    "cabbage": CropProfile(60, 230, 3_000, 0.05, 0.5),
    "broccoli": CropProfile(12, 200, 3_000, 0.0, 0.6),
    "carrot": CropProfile(40, 150, 2_500, 0.0, 0.5),
    "radish": CropProfile(60, 200, 2_500, 0.0, 0.5),
    "onion": CropProfile(65, 240, 3_000, 0.0, 0.6),
    "garlic": CropProfile(12, 250, 2_500, 0.0, 0.8),
    "green_onion": CropProfile(35, 250, 3_500, 0.3, 0.8),
    "chili_pepper": CropProfile(15, 230, 3_500, 0.3, 1.0),
    "potato": CropProfile(25, 150, 2_000, 0.0, 0.4),
    "sweet_potato": CropProfile(20, 60, 1_500, 0.0, 0.5),
    "cucumber": CropProfile(80, 300, 8_000, 0.95, 2.0),
    "zucchini": CropProfile(40, 250, 6_000, 0.8, 1.5),
    "spinach": CropProfile(15, 150, 3_000, 0.3, 0.8),
    "lettuce": CropProfile(25, 180, 5_000, 0.7, 1.5),
    "tomato": CropProfile(80, 300, 8_000, 0.95, 2.0),
    "perilla": CropProfile(20, 200, 5_000, 0.8, 1.5),
    "mushroom": CropProfile(100, 10, 2_000, 1.0, 3.0),
}
PERENNIALS = frozenset({"tangerine", "apple", "pear", "grape", "peach", "persimmon"})

# Region -> its typical crops (where Korea grows them), and the region's rough share of farms.
REGIONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "jeonnam": (
        0.15,
        (
            "rice",
            "onion",
            "garlic",
            "napa_cabbage",
            "pear",
            "sweet_potato",
            "barley",
            "chili_pepper",
        ),
    ),
    "gyeongbuk": (
        0.17,
        ("apple", "grape", "peach", "korean_melon", "chili_pepper", "rice", "persimmon", "garlic"),
    ),
    "gyeongnam": (
        0.12,
        ("strawberry", "persimmon", "onion", "garlic", "rice", "tomato", "cucumber"),
    ),
    "chungnam": (
        0.12,
        ("rice", "strawberry", "garlic", "watermelon", "tomato", "soybean", "green_onion"),
    ),
    "jeonbuk": (0.09, ("rice", "watermelon", "chili_pepper", "barley", "soybean", "strawberry")),
    "gyeonggi": (
        0.10,
        ("rice", "pear", "cucumber", "lettuce", "green_onion", "mushroom", "spinach", "perilla"),
    ),
    "chungbuk": (0.07, ("apple", "chili_pepper", "peach", "rice", "soybean", "watermelon")),
    "gangwon": (0.07, ("potato", "napa_cabbage", "radish", "cabbage", "rice", "soybean")),
    "jeju": (0.03, ("tangerine", "cabbage", "broccoli", "carrot", "radish", "garlic", "onion")),
    "daegu": (0.015, ("apple", "cucumber", "rice", "lettuce")),
    "incheon": (0.015, ("rice", "green_onion", "lettuce", "perilla")),
    "busan": (0.01, ("green_onion", "lettuce", "spinach", "tomato")),
    "ulsan": (0.01, ("pear", "rice", "mushroom")),
    "gwangju": (0.01, ("lettuce", "cucumber", "rice", "spinach")),
    "daejeon": (0.005, ("lettuce", "spinach", "perilla")),
    "sejong": (0.005, ("rice", "peach", "pear")),
    "seoul": (0.005, ("lettuce", "spinach", "perilla", "green_onion")),
}
_REGION_NAMES = tuple(REGIONS)
_REGION_P = np.array([REGIONS[r][0] for r in _REGION_NAMES]) / sum(
    REGIONS[r][0] for r in _REGION_NAMES
)

# Certification -> (base probability, extra with full diligence), for non-organic farms.
CERTIFICATION_ODDS = {
    "gap": (0.10, 0.40),
    "pesticide_free": (0.03, 0.10),
    "low_carbon": (0.02, 0.10),
    "haccp": (0.02, 0.05),
    "global_gap": (0.005, 0.03),
}


def national_n_kg_per_ha(factors: F.Factors) -> float:
    return factors.fertiliser.value * N_SHARE


def generate(n: int, seed: int, factors: F.Factors | None = None) -> list[Farm]:
    """``n`` complete farm profiles, deterministic under ``seed``."""
    rng = np.random.default_rng(seed)
    n_scale = national_n_kg_per_ha(factors or F.default()) / REFERENCE_N_KG_PER_HA
    return [_farm(rng, n_scale) for _ in range(n)]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < min(max(p, 0.0), 1.0))


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def _farm(rng: np.random.Generator, n_scale: float) -> Farm:
    region = _REGION_NAMES[int(rng.choice(len(_REGION_NAMES), p=_REGION_P))]
    options = REGIONS[region][1]
    n_crops = min(int(rng.choice(3, p=[0.6, 0.3, 0.1])) + 1, len(options))
    crops = sorted(str(c) for c in rng.choice(options, size=n_crops, replace=False))
    profiles = [CROP_PROFILES[c] for c in crops]
    covered = _chance(rng, float(np.mean([p.covered for p in profiles])))
    diligence = float(rng.beta(2.0, 2.0))

    # Korean farms are small (about 1.5 ha on average); covered ones smaller, cereals larger.
    median_ha = 0.9 * (0.5 if covered else 1.0) * (2.0 if "rice" in crops else 1.0)
    hectares = float(np.clip(_lognormal(rng, median_ha, 0.9), 0.05, 60.0))
    organic = _chance(rng, 0.02 + 0.10 * diligence)

    def per_ha(attribute: str) -> float:
        return float(np.mean([getattr(p, attribute) for p in profiles]))

    ipm = _chance(rng, 0.15 + 0.5 * diligence + (0.2 if organic else 0.0))
    fruit_factor = 1.5 if set(crops) & PERENNIALS else 1.0
    if organic:
        pesticide = float(rng.uniform(0.0, 1.5))
    else:
        median = 8.0 * fruit_factor * (0.5 if "rice" in crops else 1.0) * (0.6 if ipm else 1.0)
        pesticide = _lognormal(rng, median, 0.6)
    nitrogen = per_ha("n_kg_per_ha") * n_scale * (0.6 if organic else 1.0) * (1.1 - 0.2 * diligence)
    yield_t = per_ha("yield_t_per_ha") * (0.8 if organic else 1.0) * (1.2 if covered else 1.0)
    has_renewables = _chance(rng, 0.08 + 0.3 * diligence)
    workers = int(rng.poisson(per_ha("workers_per_ha") * hectares * 0.6))
    safety = _chance(rng, 0.2 + 0.6 * diligence)

    certifications = [
        name
        for name, (base, extra) in CERTIFICATION_ODDS.items()
        if not organic and _chance(rng, base + extra * diligence)
    ]
    if organic and _chance(rng, 0.9):
        certifications.append("organic")
    gap = "gap" in certifications or "global_gap" in certifications

    practices: dict[str, Any] = {
        "nitrogen_kg_per_ha": round(_lognormal(rng, nitrogen, 0.35), 1),
        "pesticide_kg_per_ha": round(pesticide, 2),
        "diesel_l_per_year": round(_lognormal(rng, 1500 if covered else 250, 0.5) * hectares),
        "electricity_kwh_per_year": round(
            _lognormal(rng, 40_000 if covered else 800, 0.6) * hectares
        ),
        "renewable_share": round(float(rng.uniform(0.05, 0.8)), 2) if has_renewables else 0.0,
        "water_m3_per_year": round(_lognormal(rng, per_ha("water_m3_per_ha"), 0.4) * hectares),
        "yield_kg_per_year": round(_lognormal(rng, yield_t * 1000, 0.25) * hectares),
        "cover_crops": _chance(rng, 0.1 + 0.4 * diligence + (0.2 if organic else 0.0)),
        "reduced_tillage": _chance(rng, 0.1 + 0.3 * diligence),
        "crop_rotation": _chance(rng, 0.05 if set(crops) <= PERENNIALS else 0.3 + 0.4 * diligence),
        "integrated_pest_management": ipm,
        "biodiversity_area_share": (
            round(float(rng.uniform(0.01, 0.15)), 3) if _chance(rng, 0.3 + 0.5 * diligence) else 0.0
        ),
        "workers": workers,
        "fair_wage": _chance(rng, 0.5 + 0.45 * diligence),
        "safety_training": safety,
        "training_hours_per_worker": round(max(0.0, float(rng.normal(4 + 20 * diligence, 5))), 1),
        "local_employment_share": round(
            float(np.clip(rng.normal(0.6 + 0.3 * diligence, 0.2), 0, 1)), 2
        ),
        "accidents_per_year": int(rng.poisson(max(workers, 1) * (0.02 if safety else 0.05))),
        "record_keeping": _chance(rng, 0.3 + 0.5 * diligence + (0.3 if gap else 0.0)),
        "traceability": _chance(rng, 0.2 + 0.5 * diligence + (0.3 if gap else 0.0)),
        "transparency_reports": _chance(rng, 0.05 + 0.4 * diligence),
    }
    return {
        "region": region,
        "crops": crops,
        "area_m2": max(1, round(hectares * 10_000)),
        "organic": organic,
        "certifications": sorted(certifications),
        **practices,
    }


def with_missing(
    farm: Farm,
    rate: float,
    rng: np.random.Generator,
    keys: Sequence[str] = PRACTICE_KEYS,
) -> Farm:
    """A copy of ``farm`` with each of ``keys`` dropped independently with probability
    ``rate`` (missing completely at random)."""
    drop = rng.random(len(keys)) < rate
    dropped = {k for k, d in zip(keys, drop, strict=True) if d}
    return {k: v for k, v in farm.items() if k not in dropped}
