"""The reference ESG methodology: a farm's reported practices -> E, S, G (0-100), overall, grade.

Every point is explained in ``Assessment.breakdown``; the learned model (network.py) is
trained to reproduce this calculator and is judged against it.

    a = assess({"crops": ["napa_cabbage"], "area_m2": 10_000, "organic": False,
                "certifications": ["gap"], "nitrogen_kg_per_ha": 200, ...})
    a.overall, a.grade, a.breakdown["environmental"]["components"]["carbon_intensity"]

Each pillar is 100 points split over components (tables below). Overall = 0.40 E + 0.35 S +
0.25 G. Grades: Platinum >= 90, Gold >= 80, Silver >= 70, Bronze >= 60, else Candidate.

Missing inputs (absent, None or NaN) follow one rule, MISSING_RULE: a component whose inputs
are missing scores 0 points and is listed under ``missing``. An audit credits only what is
disclosed, so a farm never gains by withholding a figure; a score always exists. The one
exception is the renewable share inside the carbon calculation, which counts as 0 % (all grid
electricity) when missing, the conservative reading. The learned model is the one that
estimates what a farm's complete profile would score, with an uncertainty band.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamtalk.domain import CROPS
from pamtalk.models.esg import factors as F

# The inputs, named as the API's farm record and its Practices schema name them.
FARM_KEYS = ("crops", "area_m2", "organic", "certifications")
# The social pillar's inputs: about the people who work on the farm (private to the owner
# and staff, see pamtalk/api/farm_view.py).
SOCIAL_PRACTICE_KEYS = (
    "workers",
    "fair_wage",
    "safety_training",
    "training_hours_per_worker",
    "local_employment_share",
    "accidents_per_year",
)
PRACTICE_KEYS = (
    # Environment
    "nitrogen_kg_per_ha",
    "pesticide_kg_per_ha",
    "diesel_l_per_year",
    "electricity_kwh_per_year",
    "renewable_share",
    "water_m3_per_year",
    "yield_kg_per_year",
    "cover_crops",
    "reduced_tillage",
    "crop_rotation",
    "integrated_pest_management",
    "biodiversity_area_share",
    *SOCIAL_PRACTICE_KEYS,
    # Governance
    "record_keeping",
    "traceability",
    "transparency_reports",
)
INPUT_KEYS = FARM_KEYS + PRACTICE_KEYS
BOOL_KEYS = frozenset(
    {
        "organic",
        "cover_crops",
        "reduced_tillage",
        "crop_rotation",
        "integrated_pest_management",
        "fair_wage",
        "safety_training",
        "record_keeping",
        "traceability",
        "transparency_reports",
    }
)
SHARE_KEYS = frozenset({"renewable_share", "biodiversity_area_share", "local_employment_share"})
LIST_KEYS = frozenset({"crops", "certifications"})

WEIGHTS = {"environmental": 0.40, "social": 0.35, "governance": 0.25}
GRADES = ((90.0, "Platinum"), (80.0, "Gold"), (70.0, "Silver"), (60.0, "Bronze"))
FLOOR_GRADE = "Candidate"

MISSING_RULE = (
    "a component whose inputs are missing scores 0 points and is listed under 'missing' "
    "(undisclosed practices are not credited); a missing renewable share counts as 0 % in "
    "the carbon calculation"
)

# --- Scoring anchors (methodology choices, not published factors) ----------------------------

# Carbon and water are judged as the ratio of the farm's figure per kg of product to the
# crops' published footprint per kg: full points at or below BEST_RATIO, none at or above
# WORST_RATIO, linear in log10 between (one decade). The farm's carbon covers what its inputs
# measure (N2O from N, diesel, electricity), a part of the study's whole farm stage, so a ratio
# of 1 means the measured part alone equals a typical farm's total.
BEST_RATIO = 0.1
WORST_RATIO = 1.0
PESTICIDE_ZERO_POINTS_KG_PER_HA = 20.0  # linear from 0 kg/ha (full) to this (none)
BIODIVERSITY_FULL_SHARE = 0.10  # of the farm's area kept for habitat; EU CAP GAEC 8 asks 4 %
TRAINING_FULL_HOURS = 20.0  # per worker per year
ACCIDENT_ZERO_POINTS_RATE = 0.10  # accidents per worker per year (1 in 10 workers)
CERTIFICATION_CAP = 40.0
# Points per certification (names of pamtalk.api.schemas.farms.CERTIFICATIONS); third-party
# schemes with wider audits weigh more. Their sum is capped at CERTIFICATION_CAP.
CERTIFICATION_POINTS = {
    "organic": 15.0,
    "pesticide_free": 10.0,
    "gap": 15.0,
    "low_carbon": 15.0,
    "haccp": 10.0,
    "global_gap": 20.0,
}

# Component -> maximum points; each pillar sums to 100.
ENVIRONMENTAL_POINTS = {
    "carbon_intensity": 30.0,
    "water_use": 15.0,
    "pesticide_use": 10.0,
    "organic": 10.0,
    "renewable_energy": 10.0,
    "cover_crops": 5.0,
    "reduced_tillage": 5.0,
    "crop_rotation": 5.0,
    "integrated_pest_management": 5.0,
    "biodiversity_area": 5.0,
}
SOCIAL_POINTS = {
    "fair_wage": 30.0,
    "safety_training": 20.0,
    "accident_rate": 15.0,
    "training_hours": 15.0,
    "local_employment": 20.0,
}
GOVERNANCE_POINTS = {
    "certifications": CERTIFICATION_CAP,
    "record_keeping": 20.0,
    "traceability": 20.0,
    "transparency_reports": 20.0,
}
CARBON_INPUTS = (
    "crops",
    "area_m2",
    "nitrogen_kg_per_ha",
    "diesel_l_per_year",
    "electricity_kwh_per_year",
    "yield_kg_per_year",
)
WATER_INPUTS = ("crops", "water_m3_per_year", "yield_kg_per_year")


@dataclass(frozen=True)
class Assessment:
    environmental: float
    social: float
    governance: float
    overall: float
    grade: str
    breakdown: dict[str, Any]


def grade(overall: float) -> str:
    for threshold, name in GRADES:
        if overall >= threshold:
            return name
    return FLOOR_GRADE


# --- Reading a farm --------------------------------------------------------------------------


def reported(farm: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a farm reports, validated: numbers as float, flags as bool, lists of str.

    Absent, None and NaN mean missing; unknown keys are ignored. A nested ``practices``
    mapping (the API's farm record) is merged in, top-level keys first."""
    nested = farm.get("practices")
    merged = {**nested, **farm} if isinstance(nested, Mapping) else dict(farm)
    values: dict[str, Any] = {}
    for key in INPUT_KEYS:
        raw = merged.get(key)
        if raw is None:
            continue
        # The common case, a plain float or int for a number or a flag, without the ABCs
        # below (batch scoring reads thousands of farms a chunk); the same rules.
        if (type(raw) is float or type(raw) is int) and key not in LIST_KEYS:
            if raw != raw:  # NaN
                continue
            if key in BOOL_KEYS:
                values[key] = bool(raw)
                continue
            number = float(raw)
            if number < 0 or (key in SHARE_KEYS and number > 1):
                raise ValueError(f"{key} out of range: {number}")
            values[key] = number
            continue
        if isinstance(raw, numbers.Real) and math.isnan(raw):
            continue
        is_flag = isinstance(raw, bool | np.bool_)
        if key in LIST_KEYS:
            if isinstance(raw, str) or not isinstance(raw, Sequence):
                raise ValueError(f"{key} must be a list of slugs, got {raw!r}")
            values[key] = [str(item) for item in raw]
        elif key in BOOL_KEYS:
            if not (is_flag or isinstance(raw, numbers.Real)):
                raise ValueError(f"{key} must be true or false, got {raw!r}")
            values[key] = bool(raw)
        else:
            if is_flag or not isinstance(raw, numbers.Real):
                raise ValueError(f"{key} must be a number, got {raw!r}")
            number = float(raw)
            if number < 0 or (key in SHARE_KEYS and number > 1):
                raise ValueError(f"{key} out of range: {number}")
            values[key] = number
    return values


def known_crops(values: Mapping[str, Any]) -> list[str]:
    return [c for c in values.get("crops", ()) if c in CROPS]


# --- Calculations shared with the features ---------------------------------------------------


def n2o_kg_co2e(nitrogen_kg: float) -> float:
    """Direct N2O from N applied, in kg CO2e: N x EF1 x 44/28 x GWP100."""
    return nitrogen_kg * F.N2O_EF1.value * F.N2O_PER_N2O_N.value * F.GWP100_N2O.value


@dataclass(frozen=True)
class Carbon:
    n2o_kg_co2e: float
    diesel_kg_co2e: float
    electricity_kg_co2e: float
    total_kg_co2e: float
    intensity: float  # kg CO2e per kg product; inf when the yield is 0
    benchmark: float  # mean Poore & Nemecek farm stage of the crops, kg CO2e per kg
    ratio: float  # intensity / benchmark

    def as_dict(self) -> dict[str, Any]:
        return {k: (v if math.isfinite(v) else None) for k, v in vars(self).items()}


def carbon(values: Mapping[str, Any], factors: F.Factors) -> Carbon | None:
    """The farm's measured emissions per kg of product against its crops; None if an input
    is missing."""
    crops = known_crops(values)
    if not crops or any(k not in values for k in CARBON_INPUTS[1:]):
        return None
    hectares = values["area_m2"] / 10_000
    n2o = n2o_kg_co2e(values["nitrogen_kg_per_ha"] * hectares)
    diesel = values["diesel_l_per_year"] * factors.diesel.value
    grid_share = 1.0 - values.get("renewable_share", 0.0)
    electricity = values["electricity_kwh_per_year"] * grid_share * factors.grid.value
    total = n2o + diesel + electricity
    benchmark = sum(factors.crop_farm_co2e(c) for c in crops) / len(crops)
    intensity = _per_kg(total, values["yield_kg_per_year"])
    return Carbon(n2o, diesel, electricity, total, intensity, benchmark, intensity / benchmark)


def water_ratio(values: Mapping[str, Any], factors: F.Factors) -> float | None:
    """Litres applied per kg of product over the crops' water footprint per kg."""
    crops = known_crops(values)
    if not crops or any(k not in values for k in WATER_INPUTS[1:]):
        return None
    footprint = sum(factors.crop_water(c) for c in crops) / len(crops)
    return _per_kg(values["water_m3_per_year"] * 1000, values["yield_kg_per_year"]) / footprint


def accident_rate(values: Mapping[str, Any]) -> float | None:
    """Accidents per worker per year; a farm without hired workers counts as one worker."""
    if "accidents_per_year" not in values or "workers" not in values:
        return None
    return float(values["accidents_per_year"] / max(values["workers"], 1.0))


def _per_kg(amount: float, kg: float) -> float:
    if kg > 0:
        return amount / kg
    return 0.0 if amount == 0 else math.inf


def ratio_fraction(ratio: float) -> float:
    """Share of points for a footprint ratio: 1 at <= BEST_RATIO, 0 at >= WORST_RATIO."""
    if ratio <= BEST_RATIO:
        return 1.0
    if ratio >= WORST_RATIO:
        return 0.0
    return math.log10(WORST_RATIO / ratio) / math.log10(WORST_RATIO / BEST_RATIO)


# --- Pillars ---------------------------------------------------------------------------------

Components = dict[str, dict[str, Any]]


def _component(
    max_points: float,
    fraction: float | None,
    value: Any,
    rule: str,
    needs: Sequence[str],
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """One scored line: ``fraction`` of ``max_points``, or 0 when it could not be computed."""
    missing = [k for k in needs if k not in values]
    if "crops" in needs and "crops" in values and not known_crops(values):
        missing.append("crops")  # reported, but none we have footprints for
    points = 0.0 if fraction is None else max_points * min(max(fraction, 0.0), 1.0)
    return {
        "points": points,
        "max_points": max_points,
        "value": value,
        "rule": rule,
        "missing": missing,
    }


def _flag(key: str, max_points: float, values: Mapping[str, Any]) -> dict[str, Any]:
    value = values.get(key)
    fraction = None if value is None else float(value)
    return _component(max_points, fraction, value, "full points when practised", [key], values)


def _share(
    key: str, max_points: float, full_at: float, values: Mapping[str, Any]
) -> dict[str, Any]:
    value = values.get(key)
    fraction = None if value is None else value / full_at
    return _component(max_points, fraction, value, f"linear, full at {full_at:g}", [key], values)


def environmental(
    values: Mapping[str, Any], factors: F.Factors
) -> tuple[Components, dict[str, Any]]:
    P = ENVIRONMENTAL_POINTS
    c = carbon(values, factors)
    water = water_ratio(values, factors)
    pesticide = values.get("pesticide_kg_per_ha")
    ratio_rule = (
        f"ratio to the crops' footprint per kg: full at <= {BEST_RATIO:g}, none at >= "
        f"{WORST_RATIO:g}, log-linear between"
    )
    components = {
        "carbon_intensity": _component(
            P["carbon_intensity"],
            None if c is None else ratio_fraction(c.ratio),
            None if c is None or not math.isfinite(c.ratio) else c.ratio,
            ratio_rule + " (Poore & Nemecek 2018 farm stage)",
            CARBON_INPUTS,
            values,
        ),
        "water_use": _component(
            P["water_use"],
            None if water is None else ratio_fraction(water),
            water if water is not None and math.isfinite(water) else None,
            ratio_rule + " (Mekonnen & Hoekstra water footprint)",
            WATER_INPUTS,
            values,
        ),
        "pesticide_use": _component(
            P["pesticide_use"],
            None if pesticide is None else 1 - pesticide / PESTICIDE_ZERO_POINTS_KG_PER_HA,
            pesticide,
            f"kg/ha, linear from 0 (full) to {PESTICIDE_ZERO_POINTS_KG_PER_HA:g} (none)",
            ["pesticide_kg_per_ha"],
            values,
        ),
        "organic": _flag("organic", P["organic"], values),
        "renewable_energy": _share("renewable_share", P["renewable_energy"], 1.0, values),
        "cover_crops": _flag("cover_crops", P["cover_crops"], values),
        "reduced_tillage": _flag("reduced_tillage", P["reduced_tillage"], values),
        "crop_rotation": _flag("crop_rotation", P["crop_rotation"], values),
        "integrated_pest_management": _flag(
            "integrated_pest_management", P["integrated_pest_management"], values
        ),
        "biodiversity_area": _share(
            "biodiversity_area_share", P["biodiversity_area"], BIODIVERSITY_FULL_SHARE, values
        ),
    }
    details: dict[str, Any] = {
        "crops": {
            crop: {
                "poore_nemecek_product": F.CROP_PRODUCT[crop],
                "farm_kg_co2e_per_kg": factors.crop_farm_co2e(crop),
                "water_footprint_group": F.CROP_WATER_GROUP[crop],
                "water_footprint_l_per_kg": factors.crop_water(crop),
            }
            for crop in known_crops(values)
        },
        "carbon": None if c is None else c.as_dict(),
    }
    return components, details


def social(values: Mapping[str, Any]) -> Components:
    P = SOCIAL_POINTS
    rate = accident_rate(values)
    return {
        "fair_wage": _flag("fair_wage", P["fair_wage"], values),
        "safety_training": _flag("safety_training", P["safety_training"], values),
        "accident_rate": _component(
            P["accident_rate"],
            None if rate is None else 1 - rate / ACCIDENT_ZERO_POINTS_RATE,
            rate,
            f"accidents per worker per year, linear from 0 (full) to "
            f"{ACCIDENT_ZERO_POINTS_RATE:g} (none)",
            ["accidents_per_year", "workers"],
            values,
        ),
        "training_hours": _share(
            "training_hours_per_worker", P["training_hours"], TRAINING_FULL_HOURS, values
        ),
        "local_employment": _share("local_employment_share", P["local_employment"], 1.0, values),
    }


def certification_points(certifications: Sequence[str]) -> float:
    return min(
        CERTIFICATION_CAP, sum(CERTIFICATION_POINTS.get(c, 0.0) for c in set(certifications))
    )


def governance(values: Mapping[str, Any]) -> Components:
    P = GOVERNANCE_POINTS
    certs = values.get("certifications")
    return {
        "certifications": _component(
            P["certifications"],
            None if certs is None else certification_points(certs) / CERTIFICATION_CAP,
            certs,
            f"points per scheme {CERTIFICATION_POINTS}, capped at {CERTIFICATION_CAP:g}",
            ["certifications"],
            values,
        ),
        "record_keeping": _flag("record_keeping", P["record_keeping"], values),
        "traceability": _flag("traceability", P["traceability"], values),
        "transparency_reports": _flag("transparency_reports", P["transparency_reports"], values),
    }


def _pillar(components: Components) -> dict[str, Any]:
    return {
        "score": sum(c["points"] for c in components.values()),
        "components": components,
        "missing": sorted({k for c in components.values() for k in c["missing"]}),
    }


# --- The assessment --------------------------------------------------------------------------


def assess(farm: Mapping[str, Any], factors: F.Factors | None = None) -> Assessment:
    """Score a farm: ``{"crops", "area_m2", "organic", "certifications", **practices}``, any
    key may be absent."""
    factors = factors or F.default()
    values = reported(farm)
    env_components, details = environmental(values, factors)
    pillars = {
        "environmental": _pillar(env_components),
        "social": _pillar(social(values)),
        "governance": _pillar(governance(values)),
    }
    overall = sum(WEIGHTS[name] * pillar["score"] for name, pillar in pillars.items())
    unknown = {
        key: sorted(set(values.get(key, ())) - set(vocabulary))
        for key, vocabulary in (("crops", CROPS), ("certifications", CERTIFICATION_POINTS))
    }
    breakdown: dict[str, Any] = {
        **pillars,
        "overall": {"score": overall, "grade": grade(overall), "weights": dict(WEIGHTS)},
        **details,
        "missing": [k for k in INPUT_KEYS if k not in values],
        "missing_rule": MISSING_RULE,
        "unknown": {k: v for k, v in unknown.items() if v},
        "factors": factor_summary(factors),
    }
    return Assessment(
        environmental=pillars["environmental"]["score"],
        social=pillars["social"]["score"],
        governance=pillars["governance"]["score"],
        overall=overall,
        grade=grade(overall),
        breakdown=breakdown,
    )


def factor_summary(factors: F.Factors) -> dict[str, Any]:
    """The factors a score used, with their sources (for the breakdown)."""
    constants: dict[str, F.Factor] = {
        "n2o_ef1": F.N2O_EF1,
        "n2o_per_n2o_n": F.N2O_PER_N2O_N,
        "gwp100_n2o": F.GWP100_N2O,
        "diesel": factors.diesel,
        "grid": factors.grid,
    }
    summary: dict[str, Any] = {k: vars(f) for k, f in constants.items()}
    summary["origin"] = factors.origin
    return summary
