"""Published emission and resource factors for the ESG methodology, each with its source.

The numbers that live in data files are read from ``../shared/data/esg`` when that folder is
present (next to the repository) and otherwise come from the embedded copies below, which
hold the same values: a fresh machine without ``../shared`` scores farms identically.
``tests/models/esg/test_factors.py`` checks that the two agree.

    factors = default()            # cached; from ../shared when present
    factors.grid.value             # 0.41565 kg CO2 per kWh
    factors.crop_farm_co2e("rice") # 3.6 kg CO2e per kg (Poore & Nemecek 2018, farm stage)
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from pamtalk.domain import CROPS

# ../shared/data/esg next to the repository root (pamtalk/models/esg/factors.py -> root).
SHARED_ESG = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "esg"


@dataclass(frozen=True)
class Factor:
    value: float
    unit: str
    source: str


# --- Constants from publications (no data file needed) --------------------------------------

N2O_EF1 = Factor(
    0.01,
    "kg N2O-N per kg N applied",
    "IPCC 2019 Refinement to the 2006 Guidelines, Vol. 4 Ch. 11, Table 11.1: EF1, direct N2O "
    "from synthetic and organic N inputs (aggregated default)",
)
N2O_PER_N2O_N = Factor(
    44 / 28, "kg N2O per kg N2O-N", "molar masses: N2O 44 g/mol, the two N atoms 28 g/mol"
)
GWP100_N2O = Factor(
    273.0,
    "kg CO2e per kg N2O",
    "IPCC AR6 WG1 (2021), Ch. 7, Table 7.15: GWP100 of N2O",
)
DIESEL_KG_CO2_PER_TJ = 74_100.0  # IPCC 2006 Guidelines, Vol. 2 Ch. 3, Table 3.2.1 (gas/diesel oil)
DIESEL_MJ_PER_L = 36.2  # net calorific value per litre (IPCC 2006: 43.0 TJ/Gg at ~0.84 kg/L)
MJ_PER_MWH = 3_600.0

# --- Embedded copies of the data files' values (the fallback) -------------------------------

_DIESEL_SOURCE = (
    "IPCC 2006 Guidelines, Vol. 2: 74,100 kg CO2/TJ for gas/diesel oil x 36.2 MJ/L; "
    "owid_CO2_emission_factors_IPCC2006.csv ('Diesel Oil', 266.76 kg CO2/MWh)"
)
EMBEDDED_DIESEL = Factor(
    DIESEL_KG_CO2_PER_TJ * DIESEL_MJ_PER_L * 1e-6, "kg CO2 per litre diesel", _DIESEL_SOURCE
)

# Average (not marginal) intensity: a farm's electricity is attributional consumption, for
# which the grid average is the right figure; the IFI combined margin (335 g/kWh) is meant
# for valuing new projects that displace marginal plants.
_GRID_SOURCE = (
    "Ember (2025), average grid carbon intensity, South Korea 2024 = 415.65 g CO2/kWh, "
    "CC BY-SA 4.0; ember_grid_intensity_by_country_latest.csv"
)
EMBEDDED_GRID = Factor(415.65 / 1000, "kg CO2 per kWh", _GRID_SOURCE)

_PN_SOURCE = (
    "Poore & Nemecek (2018), Science 360:987, farm-stage emissions (kg CO2e per kg product); "
    "poore_nemecek_2018_food_production.csv, column 'Farm'"
)
# Poore & Nemecek product -> farm-stage kg CO2e per kg product.
EMBEDDED_FARM_CO2E: dict[str, float] = {
    "Rice": 3.6,
    "Barley (Beer)": 0.2,
    "Other Pulses": 1.1,
    "Potatoes": 0.2,
    "Root Vegetables": 0.2,
    "Brassicas": 0.3,
    "Onions & Leeks": 0.2,
    "Tomatoes": 0.7,
    "Other Vegetables": 0.2,
    "Citrus Fruit": 0.3,
    "Apples": 0.2,
    "Berries & Grapes": 0.7,
    "Other Fruit": 0.4,
}

# The OWID column is titled "per tonne" but holds m3 per tonne (beef 15,415 is Mekonnen &
# Hoekstra's 15,415 m3/t), which is the same number as litres per kg.
_WATER_SOURCE = (
    "Mekonnen & Hoekstra (2012), global average water footprint (green + blue + grey) by food "
    "group, via Our World in Data, CC BY 4.0; owid_water_footprint_mekonnen_hoekstra.csv"
)
EMBEDDED_WATER_L_PER_KG: dict[str, float] = {
    "Vegetables": 322.0,
    "Fruits": 962.0,
    "Cereals": 1644.0,
    "Pulses": 4055.0,
    "Starchy roots": 387.0,
}

# Total fertiliser nutrients (N + P2O5 + K2O) per hectare of cropland, South Korea, mean of
# the last five years in the file (2010-2014). Only the farm-profile generator uses it.
_FERTILISER_SOURCE = (
    "FAO (2017) & Federico (2008) via Our World in Data, South Korea 2010-2014 mean; "
    "owid_fertilizer_use_per_ha_fao_federico.csv"
)
EMBEDDED_FERTILISER = Factor(382.63274224, "kg nutrients per ha cropland", _FERTILISER_SOURCE)
FERTILISER_YEARS = range(2010, 2015)

# --- Our crops -> the studies' products and food groups --------------------------------------

# Closest Poore & Nemecek product for each crop slug (pamtalk.domain.CROPS).
CROP_PRODUCT: dict[str, str] = {
    "tangerine": "Citrus Fruit",
    "broccoli": "Brassicas",
    "cabbage": "Brassicas",
    "napa_cabbage": "Brassicas",
    "carrot": "Root Vegetables",
    "radish": "Root Vegetables",
    "sweet_potato": "Root Vegetables",
    "rice": "Rice",
    "barley": "Barley (Beer)",  # the study's only barley: the farm stage is the grain itself
    "soybean": "Other Pulses",
    "onion": "Onions & Leeks",
    "garlic": "Onions & Leeks",
    "green_onion": "Onions & Leeks",
    "potato": "Potatoes",
    "tomato": "Tomatoes",
    "chili_pepper": "Other Vegetables",
    "cucumber": "Other Vegetables",
    "zucchini": "Other Vegetables",
    "spinach": "Other Vegetables",
    "lettuce": "Other Vegetables",
    "perilla": "Other Vegetables",
    "mushroom": "Other Vegetables",
    "apple": "Apples",
    "pear": "Other Fruit",
    "peach": "Other Fruit",
    "persimmon": "Other Fruit",
    "watermelon": "Other Fruit",
    "korean_melon": "Other Fruit",
    "grape": "Berries & Grapes",
    "strawberry": "Berries & Grapes",
}

# Mekonnen & Hoekstra food group for each crop: by the domain's category, except roots.
_GROUP_BY_CATEGORY = {
    "vegetable": "Vegetables",
    "fruit": "Fruits",
    "cereal": "Cereals",
    "pulse": "Pulses",
}
CROP_WATER_GROUP: dict[str, str] = {
    slug: "Starchy roots"
    if slug in ("potato", "sweet_potato")
    else _GROUP_BY_CATEGORY[crop.category]
    for slug, crop in CROPS.items()
}


@dataclass(frozen=True)
class Factors:
    """The file-backed factors, from ../shared or embedded; ``origin`` says which."""

    diesel: Factor  # kg CO2 per litre
    grid: Factor  # kg CO2 per kWh
    farm_co2e: Mapping[str, Factor]  # Poore & Nemecek product -> kg CO2e per kg
    water: Mapping[str, Factor]  # Mekonnen & Hoekstra group -> litres per kg
    fertiliser: Factor  # kg nutrients per ha, South Korea
    origin: str  # "embedded" or the folder read

    def crop_farm_co2e(self, crop: str) -> float:
        return self.farm_co2e[CROP_PRODUCT[crop]].value

    def crop_water(self, crop: str) -> float:
        return self.water[CROP_WATER_GROUP[crop]].value


def embedded() -> Factors:
    return Factors(
        diesel=EMBEDDED_DIESEL,
        grid=EMBEDDED_GRID,
        farm_co2e={
            k: Factor(v, "kg CO2e per kg", _PN_SOURCE) for k, v in EMBEDDED_FARM_CO2E.items()
        },
        water={
            k: Factor(v, "litres per kg", _WATER_SOURCE) for k, v in EMBEDDED_WATER_L_PER_KG.items()
        },
        fertiliser=EMBEDDED_FERTILISER,
        origin="embedded",
    )


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _pick(path: Path, key: str, match: str, column: str) -> float:
    for row in _rows(path):
        if row[key] == match:
            return float(row[column])
    raise LookupError(f"{path.name}: no row with {key} = {match!r}")


def from_files(directory: Path) -> Factors:
    """Read the factors from the reference data files in ``directory``."""
    diesel_kg_per_mwh = _pick(
        directory / "owid_CO2_emission_factors_IPCC2006.csv",
        "Entity",
        "Diesel Oil",
        "CO₂ Emissions Factor (IPCC (2006))",
    )
    grid_g_per_kwh = _pick(
        directory / "ember_grid_intensity_by_country_latest.csv",
        "country_code",
        "KOR",
        "emissions_intensity_gco2_per_kwh",
    )
    farm = {
        row["Food product"]: float(row["Farm"])
        for row in _rows(directory / "poore_nemecek_2018_food_production.csv")
    }
    water = {
        row["Entity"]: float(row["Water requirement per tonne"])
        for row in _rows(directory / "owid_water_footprint_mekonnen_hoekstra.csv")
    }
    fertiliser = [
        float(row["Fertilizer consumption (FAO (2017) & Federico (2008))"])
        for row in _rows(directory / "owid_fertilizer_use_per_ha_fao_federico.csv")
        if row["Entity"] == "South Korea" and int(row["Year"]) in FERTILISER_YEARS
    ]
    return Factors(
        diesel=Factor(
            diesel_kg_per_mwh / MJ_PER_MWH * DIESEL_MJ_PER_L, EMBEDDED_DIESEL.unit, _DIESEL_SOURCE
        ),
        grid=Factor(grid_g_per_kwh / 1000, EMBEDDED_GRID.unit, _GRID_SOURCE),
        farm_co2e={
            product: Factor(farm[product], "kg CO2e per kg", _PN_SOURCE)
            for product in EMBEDDED_FARM_CO2E
        },
        water={
            group: Factor(water[group], "litres per kg", _WATER_SOURCE)
            for group in EMBEDDED_WATER_L_PER_KG
        },
        fertiliser=Factor(fmean(fertiliser), EMBEDDED_FERTILISER.unit, _FERTILISER_SOURCE),
        origin=str(directory),
    )


def load(directory: Path) -> Factors:
    """From the files in ``directory`` when it exists, else the embedded copies."""
    return from_files(directory) if directory.is_dir() else embedded()


@functools.cache
def default() -> Factors:
    """The factors every caller uses: from ../shared when present, else embedded."""
    return load(SHARED_ESG)
