"""Every demand data source yields one frame: a long table, one row per series and day.

    series     str             one daily series (e.g. "tangerine:jeju:A", "carrot:seoul")
    crop       str             crop slug (pamtalk.domain.CROPS)
    region     str             region slug (pamtalk.domain.REGIONS)
    date       datetime64[ns]  every day from the frame's first to its last, no gaps
    demand_kg  float64         traded quantity; 0 on closed days
    price_krw  float64         KRW per kg; 0 where unknown

Sources: the Jeju produce data (`load_jeju`, or `load_csv` for any CSV of that shape), the
platform's daily aggregates (`from_daily_aggregate`) and the generator in `synthetic.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pamtalk.domain import CROPS, JEJU_ITEMS, JEJU_LOCATIONS, REGIONS

COLUMNS = ("series", "crop", "region", "date", "demand_kg", "price_krw")
# ../shared/data next to the repository (shared/data/README.md); absent on a fresh machine.
JEJU_TRAIN = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "jeju" / "train.csv"
_JEJU_COLUMNS = {
    "timestamp": "date",
    "item": "item",
    "corporation": "corporation",
    "location": "location",
    "supply(kg)": "demand_kg",
    "price(원/kg)": "price_krw",
}
AGGREGATE_FIELDS = ("crop", "region", "day", "quantity_g", "value_krw")


def load_jeju(path: str | Path = JEJU_TRAIN) -> pd.DataFrame:
    """The Jeju produce data (39 series, item x trading company x location)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the Jeju data lives in ../shared/data/jeju/train.csv "
            "(see shared/data/README.md); use synthetic() on a machine without it"
        )
    return load_csv(path)


def load_csv(path: str | Path) -> pd.DataFrame:
    """A CSV of the Jeju shape: ``ID,timestamp,item,corporation,location,supply(kg),
    price(원/kg)``. Items and locations are Jeju codes (TG, J, ...) or platform slugs."""
    raw = pd.read_csv(path, usecols=list(_JEJU_COLUMNS), dtype={"corporation": str})
    raw = raw.rename(columns=_JEJU_COLUMNS)
    crop = _to_slug(raw["item"], JEJU_ITEMS, CROPS, "item")
    region = _to_slug(raw["location"], JEJU_LOCATIONS, REGIONS, "location")
    frame = pd.DataFrame(
        {
            "series": crop + ":" + region + ":" + raw["corporation"].astype(str),
            "crop": crop,
            "region": region,
            "date": pd.to_datetime(raw["date"]),
            "demand_kg": raw["demand_kg"].astype("float64"),
            "price_krw": raw["price_krw"].astype("float64"),
        }
    )
    return complete_days(frame)


def from_daily_aggregate(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
) -> pd.DataFrame:
    """The platform's daily aggregates (mappings or tuples of crop, region, day, quantity_g,
    value_krw) -> one series per crop x region, ``series = "crop:region"``."""
    records = [
        {k: row[k] for k in AGGREGATE_FIELDS}
        if isinstance(row, Mapping)
        else dict(zip(AGGREGATE_FIELDS, row, strict=True))
        for row in rows
    ]
    if not records:
        return empty_frame()
    raw = pd.DataFrame.from_records(records, columns=list(AGGREGATE_FIELDS))
    for column, vocabulary in (("crop", CROPS), ("region", REGIONS)):
        unknown = sorted(set(raw[column]) - set(vocabulary))
        if unknown:
            raise ValueError(f"unknown {column} slug(s): {unknown}")
    raw["date"] = pd.to_datetime([_as_date(d) for d in raw["day"]])
    summed = raw.groupby(["crop", "region", "date"], as_index=False)[
        ["quantity_g", "value_krw"]
    ].sum()
    kg = summed["quantity_g"].astype("float64") / 1000.0
    value = summed["value_krw"].astype("float64")
    frame = pd.DataFrame(
        {
            "series": summed["crop"] + ":" + summed["region"],
            "crop": summed["crop"],
            "region": summed["region"],
            "date": summed["date"],
            "demand_kg": kg,
            # KRW per kg where something was traded; 0 (unknown) otherwise.
            "price_krw": np.where(kg > 0, value / kg.where(kg > 0, 1.0), 0.0),
        }
    )
    return complete_days(frame)


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series": pd.Series(dtype=str),
            "crop": pd.Series(dtype=str),
            "region": pd.Series(dtype=str),
            "date": pd.Series(dtype="datetime64[ns]"),
            "demand_kg": pd.Series(dtype="float64"),
            "price_krw": pd.Series(dtype="float64"),
        }
    )


def complete_days(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per series and day over the frame's whole date range (missing days: 0),
    duplicates summed, sorted by series then date, in the canonical dtypes."""
    if frame.empty:
        return empty_frame()
    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.normalize().astype("datetime64[ns]"))
    meta = frame.groupby("series", sort=True)[["crop", "region"]].first()
    # Summing price over duplicate rows would be wrong: weight it by quantity instead.
    frame = frame.assign(value=frame["demand_kg"] * frame["price_krw"])
    daily = frame.groupby(["series", "date"], sort=True)[["demand_kg", "value"]].sum()
    days = pd.date_range(frame["date"].min(), frame["date"].max(), freq="D", unit="ns")
    full = pd.MultiIndex.from_product([meta.index, days], names=["series", "date"])
    daily = daily.reindex(full, fill_value=0.0).reset_index()
    kg = daily["demand_kg"].to_numpy(dtype="float64")
    value = daily["value"].to_numpy(dtype="float64")
    out = pd.DataFrame(
        {
            "series": daily["series"].astype(str),
            "crop": daily["series"].map(meta["crop"]).astype(str),
            "region": daily["series"].map(meta["region"]).astype(str),
            "date": daily["date"],
            "demand_kg": kg,
            "price_krw": np.divide(value, kg, out=np.zeros_like(kg), where=kg > 0),
        }
    )
    return out.reset_index(drop=True)


def validate(frame: pd.DataFrame) -> None:
    """Raise ValueError unless ``frame`` has the one shape every source yields."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"demand frame lacks column(s) {missing}")
    if frame.empty:
        raise ValueError("demand frame is empty")
    if frame["date"].dtype != np.dtype("datetime64[ns]"):
        raise ValueError(f"date must be datetime64[ns], not {frame['date'].dtype}")
    if (frame["demand_kg"] < 0).any() or (frame["price_krw"] < 0).any():
        raise ValueError("demand_kg and price_krw must be non-negative")
    counts = frame.groupby("series")["date"].agg(["min", "max", "count", "nunique"])
    expected = (counts["max"] - counts["min"]).dt.days + 1
    if not ((counts["count"] == expected) & (counts["nunique"] == expected)).all():
        raise ValueError("every series needs exactly one row per day, without gaps")


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the frame's content in canonical order (independent of row order)."""
    f = frame.sort_values(["series", "date"], kind="stable")
    digest = hashlib.sha256()
    for column in ("series", "crop", "region"):
        digest.update("\x1f".join(f[column].astype(str)).encode())
    digest.update(f["date"].to_numpy(dtype="datetime64[ns]").astype(np.int64).tobytes())
    for column in ("demand_kg", "price_krw"):
        digest.update(np.ascontiguousarray(f[column].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def _to_slug(
    codes: pd.Series, jeju: Mapping[str, str], vocabulary: Mapping[str, Any], what: str
) -> pd.Series:
    codes = codes.astype(str)
    slugs = codes.map(lambda c: jeju.get(c, c))
    unknown = sorted(set(slugs) - set(vocabulary))
    if unknown:
        raise ValueError(f"unknown {what} code(s): {unknown}")
    return slugs.astype(str)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
