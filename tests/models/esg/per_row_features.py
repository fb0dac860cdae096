"""The ESG features as they were computed before issue 14, one farm at a time in Python: kept
as the oracle that the vectorised pamtalk.models.esg.features must match bit for bit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamtalk.models.esg import factors as F
from pamtalk.models.esg import methodology as M

Values = Mapping[str, Any]
Encoder = Callable[[Values, F.Factors], float | None]
CLIP = 2.0


@dataclass(frozen=True)
class Feature:
    encode: Encoder
    needs: tuple[str, ...]


# --- Encoders --------------------------------------------------------------------------------


def _scaled(key: str, scale: float) -> Encoder:
    return lambda v, f: None if key not in v else float(v[key]) / scale


def _log(key: str, decades: float) -> Encoder:
    """log10(1 + x) / decades: 0 at 0, 1 at 10**decades - 1."""
    return lambda v, f: None if key not in v else math.log10(1.0 + v[key]) / decades


def _certification(name: str) -> Encoder:
    return lambda v, f: None if "certifications" not in v else float(name in v["certifications"])


def _area(v: Values, f: F.Factors) -> float | None:
    # log10(hectares) from 0.01 ha (0) to 100 ha (1).
    return None if "area_m2" not in v else (math.log10(max(v["area_m2"], 1.0) / 10_000) + 2) / 4


def _crop_mean(per_crop: Callable[[F.Factors, str], float], scale: float) -> Encoder:
    def mean(v: Values, f: F.Factors) -> float | None:
        crops = M.known_crops(v)
        return None if not crops else sum(per_crop(f, c) for c in crops) / len(crops) / scale

    return mean


def _log_ratio(ratio: float | None) -> float | None:
    # log10(ratio) from 0.01 (0) to 10 (1); the scoring anchors 0.1 and 1 sit at 1/3 and 2/3.
    if ratio is None:
        return None
    return 1.0 if not math.isfinite(ratio) else (math.log10(max(ratio, 1e-3)) + 2) / 3


def _carbon(v: Values, f: F.Factors) -> float | None:
    c = M.carbon(v, f) if "renewable_share" in v else None
    return _log_ratio(None if c is None else c.ratio)


def _water(v: Values, f: F.Factors) -> float | None:
    return _log_ratio(M.water_ratio(v, f))


def _accidents(v: Values, f: F.Factors) -> float | None:
    rate = M.accident_rate(v)
    return None if rate is None else rate / (2 * M.ACCIDENT_ZERO_POINTS_RATE)


def _input(key: str, encoder: Encoder) -> Feature:
    return Feature(encoder, (key,))


def _as_is(key: str) -> Feature:
    """Flags (0/1) and shares (0..1) need no scaling."""
    return Feature(_scaled(key, 1.0), (key,))


# --- The vector ------------------------------------------------------------------------------

# Name -> feature, in vector order. Names are the API's field names (certifications one-hot as
# certifications:<scheme>); the derived features are named for what they compute.
FEATURE_TABLE: dict[str, Feature] = {
    # The farm record.
    "area_m2": _input("area_m2", _area),
    "organic": _as_is("organic"),
    "crops_farm_co2e": _input("crops", _crop_mean(F.Factors.crop_farm_co2e, 4.0)),  # rice 3.6
    "crops_water_footprint": _input("crops", _crop_mean(F.Factors.crop_water, 4000.0)),  # L/kg
    **{
        f"certifications:{c}": _input("certifications", _certification(c))
        for c in M.CERTIFICATION_POINTS
    },
    # Practices: environment.
    "nitrogen_kg_per_ha": _input("nitrogen_kg_per_ha", _scaled("nitrogen_kg_per_ha", 400.0)),
    "pesticide_kg_per_ha": _input("pesticide_kg_per_ha", _scaled("pesticide_kg_per_ha", 20.0)),
    "diesel_l_per_year": _input("diesel_l_per_year", _log("diesel_l_per_year", 6.0)),
    "electricity_kwh_per_year": _input(
        "electricity_kwh_per_year", _log("electricity_kwh_per_year", 8.0)
    ),
    "renewable_share": _as_is("renewable_share"),
    "water_m3_per_year": _input("water_m3_per_year", _log("water_m3_per_year", 8.0)),
    "yield_kg_per_year": _input("yield_kg_per_year", _log("yield_kg_per_year", 9.0)),
    "cover_crops": _as_is("cover_crops"),
    "reduced_tillage": _as_is("reduced_tillage"),
    "crop_rotation": _as_is("crop_rotation"),
    "integrated_pest_management": _as_is("integrated_pest_management"),
    "biodiversity_area_share": _input(
        "biodiversity_area_share",
        _scaled("biodiversity_area_share", 2 * M.BIODIVERSITY_FULL_SHARE),
    ),
    # Practices: social.
    "workers": _input("workers", _log("workers", 3.0)),
    "fair_wage": _as_is("fair_wage"),
    "safety_training": _as_is("safety_training"),
    "training_hours_per_worker": _input(
        "training_hours_per_worker",
        _scaled("training_hours_per_worker", 2 * M.TRAINING_FULL_HOURS),
    ),
    "local_employment_share": _as_is("local_employment_share"),
    "accidents_per_year": _input("accidents_per_year", _log("accidents_per_year", 2.0)),
    # Practices: governance.
    "record_keeping": _as_is("record_keeping"),
    "traceability": _as_is("traceability"),
    "transparency_reports": _as_is("transparency_reports"),
    # Derived by the methodology from several inputs. The carbon ratio also needs the
    # renewable share (which the methodology reads as 0 when missing), so that a feature is
    # either exactly the complete profile's value or missing.
    "carbon_ratio": Feature(_carbon, (*M.CARBON_INPUTS, "renewable_share")),
    "water_ratio": Feature(_water, M.WATER_INPUTS),
    "accident_rate": Feature(_accidents, ("accidents_per_year", "workers")),
}


def encode(
    farm: Mapping[str, Any], factors: F.Factors | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values [F], mask [F]) float32 for one farm; same input as methodology.assess."""
    factors = factors or F.default()
    reported = M.reported(farm)
    values = np.zeros(len(FEATURE_TABLE), dtype=np.float32)
    mask = np.zeros(len(FEATURE_TABLE), dtype=np.float32)
    for i, feature in enumerate(FEATURE_TABLE.values()):
        x = feature.encode(reported, factors)
        if x is not None:
            values[i] = min(max(x, 0.0), CLIP)
            mask[i] = 1.0
    return values, mask
