"""Farms -> the ESG network's input: a practice vector with its missing-value mask.

    X, M = encode_many(farms)          # float32 [N, F] each, F = len(FEATURES) = ESG_FEATURES
    values, mask = encode(farm)        # float32 [F] each: encode_many of the one farm
    X2, M2 = hide(X, M, reported)      # the same farms with fewer inputs, no re-encoding

Each feature is one reported input scaled to roughly 0..1 (quantities that span orders of
magnitude on a log scale), or a quantity the methodology derives from several inputs (the
carbon and water ratios, the accident rate): giving the network the ratios it is judged on
spares it from learning a division, and keeping the raw inputs lets it estimate them when a
part is missing. ``mask`` is 1 where the feature could be computed from reported inputs and 0
where not; the value is then 0. Values are clipped to [0, 2].

Every feature is computed over all the farms at once, as numpy arrays over the columns of a
:class:`Frame` (batch scoring encodes thousands of farms a chunk; one farm online is a frame
of one row, so both give the same answer). The arithmetic is the methodology's, in the same
order, so that a value is bit for bit what the methodology's per-farm calculation gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pamtalk.models.esg import factors as F
from pamtalk.models.esg import methodology as M

# A feature over N farms: (values float64 [N], present bool [N]); a value where not present
# is ignored.
Column = tuple[np.ndarray, np.ndarray]
CLIP = 2.0


# The inputs read as numbers (flags as 0/1) and the list inputs, in methodology.INPUT_KEYS order.
NUMBER_KEYS = tuple(k for k in M.INPUT_KEYS if k not in M.LIST_KEYS)
_NUMBER_INDEX = {key: j for j, key in enumerate(NUMBER_KEYS)}


@dataclass
class Frame:
    """The reported inputs (methodology.reported) of N farms as columns: every number and
    flag input in one [N, K] float64 array (0 where missing) beside its [N, K] reported mask,
    read in one pass; the list inputs (crops, certifications) stay per farm."""

    rows: list[dict[str, Any]]
    numbers: np.ndarray = field(init=False, repr=False)  # [N, K] float64
    reported: np.ndarray = field(init=False, repr=False)  # [N, K] bool
    _crop_means: dict[Any, Column] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        rows, keys = self.rows, NUMBER_KEYS
        self.reported = np.array([[k in row for k in keys] for row in rows], dtype=bool)
        self.numbers = np.array(
            [[float(row.get(k, 0.0)) for k in keys] for row in rows], dtype=np.float64
        ).reshape(len(rows), len(keys))
        self.reported = self.reported.reshape(len(rows), len(keys))

    @classmethod
    def of(cls, farms: Iterable[Mapping[str, Any]]) -> Frame:
        return cls([M.reported(farm) for farm in farms])

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, key: str) -> Column:
        """A number or flag input: (its value as float, 0 where missing; reported)."""
        j = _NUMBER_INDEX[key]
        return self.numbers[:, j], self.reported[:, j]

    def present(self, *keys: str) -> np.ndarray:
        """bool [N]: every one of ``keys`` reported."""
        found = np.ones(len(self.rows), dtype=bool)
        for key in keys:
            found &= self.column(key)[1] if key not in M.LIST_KEYS else self.listed(key)
        return found

    def listed(self, key: str) -> np.ndarray:
        """bool [N]: the list input ``key`` reported (possibly empty)."""
        return np.array([key in row for row in self.rows], dtype=bool).reshape(len(self.rows))

    def crop_mean(self, per_crop: Callable[[F.Factors, str], float], factors: F.Factors) -> Column:
        """The mean of a per-crop factor over each farm's known crops (the methodology's
        sum / count, in its order); not present without a known crop."""
        if per_crop not in self._crop_means:
            means: dict[tuple[str, ...], float] = {}
            values, present = [], []
            for row in self.rows:
                crops = tuple(M.known_crops(row))
                if crops and crops not in means:
                    means[crops] = sum(per_crop(factors, c) for c in crops) / len(crops)
                values.append(means[crops] if crops else 0.0)
                present.append(bool(crops))
            self._crop_means[per_crop] = (
                np.array(values, dtype=np.float64),
                np.array(present, dtype=bool),
            )
        return self._crop_means[per_crop]


Encoder = Callable[[Frame, F.Factors], Column]


@dataclass(frozen=True)
class Feature:
    encode: Encoder
    needs: tuple[str, ...]  # the inputs it is computed from: missing if any of them is


# --- Encoders --------------------------------------------------------------------------------


def _scaled(key: str, scale: float) -> Encoder:
    def scaled(frame: Frame, f: F.Factors) -> Column:
        values, present = frame.column(key)
        return values / scale, present

    return scaled


def _log(key: str, decades: float) -> Encoder:
    """log10(1 + x) / decades: 0 at 0, 1 at 10**decades - 1."""

    def log(frame: Frame, f: F.Factors) -> Column:
        values, present = frame.column(key)
        return np.log10(1.0 + values) / decades, present

    return log


def _certification(name: str) -> Encoder:
    def held(frame: Frame, f: F.Factors) -> Column:
        rows = frame.rows
        values = np.array([name in row.get("certifications", ()) for row in rows], dtype=float)
        return values.reshape(len(rows)), frame.listed("certifications")

    return held


def _area(frame: Frame, f: F.Factors) -> Column:
    # log10(hectares) from 0.01 ha (0) to 100 ha (1).
    values, present = frame.column("area_m2")
    return (np.log10(np.maximum(values, 1.0) / 10_000) + 2) / 4, present


def _crop_mean(per_crop: Callable[[F.Factors, str], float], scale: float) -> Encoder:
    def mean(frame: Frame, f: F.Factors) -> Column:
        values, present = frame.crop_mean(per_crop, f)
        return values / scale, present

    return mean


def _per_kg(amount: np.ndarray, kg: np.ndarray) -> np.ndarray:
    """methodology._per_kg over arrays: amount / kg, 0 or inf for no yield."""
    return np.where(kg > 0, amount / kg, np.where(amount == 0, 0.0, np.inf))


def _log_ratio(ratio: np.ndarray) -> np.ndarray:
    # log10(ratio) from 0.01 (0) to 10 (1); the scoring anchors 0.1 and 1 sit at 1/3 and 2/3.
    scaled = (np.log10(np.maximum(ratio, 1e-3)) + 2) / 3
    return np.where(np.isfinite(ratio), scaled, 1.0)


def _carbon(frame: Frame, f: F.Factors) -> Column:
    """methodology.carbon's ratio over arrays, same operations in the same order."""
    benchmark, known = frame.crop_mean(F.Factors.crop_farm_co2e, f)
    present = known & frame.present(*M.CARBON_INPUTS[1:], "renewable_share")
    area, nitrogen, diesel_l, kwh, renewable, kg = (
        frame.column(key)[0]
        for key in (
            "area_m2",
            "nitrogen_kg_per_ha",
            "diesel_l_per_year",
            "electricity_kwh_per_year",
            "renewable_share",
            "yield_kg_per_year",
        )
    )
    hectares = area / 10_000
    # methodology.n2o_kg_co2e of the farm's kg of N, the same products in the same order.
    n2o = nitrogen * hectares * F.N2O_EF1.value * F.N2O_PER_N2O_N.value * F.GWP100_N2O.value
    diesel = diesel_l * f.diesel.value
    electricity = kwh * (1.0 - renewable) * f.grid.value
    total = n2o + diesel + electricity
    ratio = _per_kg(total, kg) / np.where(known, benchmark, 1.0)
    return _log_ratio(ratio), present


def _water(frame: Frame, f: F.Factors) -> Column:
    footprint, known = frame.crop_mean(F.Factors.crop_water, f)
    present = known & frame.present(*M.WATER_INPUTS[1:])
    water, kg = frame.column("water_m3_per_year")[0], frame.column("yield_kg_per_year")[0]
    ratio = _per_kg(water * 1000, kg) / np.where(known, footprint, 1.0)
    return _log_ratio(ratio), present


def _accidents(frame: Frame, f: F.Factors) -> Column:
    accidents, workers = frame.column("accidents_per_year")[0], frame.column("workers")[0]
    rate = accidents / np.maximum(workers, 1.0)
    return rate / (2 * M.ACCIDENT_ZERO_POINTS_RATE), frame.present("accidents_per_year", "workers")


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
FEATURES: tuple[str, ...] = tuple(FEATURE_TABLE)
# [F, K] 1 where feature f needs input key k (methodology.INPUT_KEYS order).
NEEDS = np.array(
    [[float(k in f.needs) for k in M.INPUT_KEYS] for f in FEATURE_TABLE.values()],
    dtype=np.float32,
)


def encode_frame(frame: Frame, factors: F.Factors | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values [N, F], mask [N, F]) float32 of the frame's farms."""
    factors = factors or F.default()
    if not len(frame):
        empty = np.zeros((0, len(FEATURES)), dtype=np.float32)
        return empty, empty.copy()
    # A missing input's placeholder (0) may divide by zero on the way; its result is masked.
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = [feature.encode(frame, factors) for feature in FEATURE_TABLE.values()]
        x = np.stack([c[0] for c in columns], axis=1)  # [N, F] float64
        present = np.stack([c[1] for c in columns], axis=1)  # [N, F] bool
        values = np.where(present, np.minimum(np.maximum(x, 0.0), CLIP), 0.0)
    return values.astype(np.float32), present.astype(np.float32)


def encode_many(
    farms: Iterable[Mapping[str, Any]], factors: F.Factors | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values [N, F], mask [N, F]) float32; the same input as methodology.assess, per farm."""
    return encode_frame(Frame.of(farms), factors)


def encode(
    farm: Mapping[str, Any], factors: F.Factors | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values [F], mask [F]) float32 for one farm: encode_many of it alone."""
    values, mask = encode_many([farm], factors)
    return values[0], mask[0]


def hide(
    values: np.ndarray, mask: np.ndarray, reported: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The encoding of the same farms with fewer inputs, without re-encoding: values [N, F]
    and mask [N, F] of the farms, reported [N, K] 1 where input key k (INPUT_KEYS order)
    stays. Equal to encode() of the farms with the other keys removed, because each feature
    is a function of the inputs in its ``needs`` alone."""
    missing = (1.0 - reported.astype(np.float32)) @ NEEDS.T  # [N, F] missing inputs per feature
    kept = (mask * (missing == 0)).astype(np.float32)  # [N, F]
    return values * kept, kept
