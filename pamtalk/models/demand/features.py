"""Model inputs (contract DEMAND): 56 days of raw demand and price, and calendar features
known for those days and the 28 to forecast.

    history   float32 [N, 56, 2]   demand kg, price KRW/kg (0 = unknown); no scaling here
    calendar  float32 [N, 84, C]   CALENDAR_COLUMNS for days end-55 .. end+28

Scaling happens inside the network, so serving and batch scoring feed raw numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from pamtalk.models.contract import DEMAND_CALENDAR_FEATURES, DEMAND_HORIZON, DEMAND_LOOKBACK
from pamtalk.models.demand.holidays import year_holidays

LOOKBACK, HORIZON = DEMAND_LOOKBACK, DEMAND_HORIZON
WINDOW = LOOKBACK + HORIZON
CALENDAR_COLUMNS = (
    *(f"weekday_{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "doy_sin",
    "doy_cos",
    "holiday",  # any public holiday, substitutes included
    "major_holiday",  # New Year's Day, Seollal, Chuseok (+ substitutes): markets close
    "after_major",  # first working day after those: often closed or thin
    "pre_major",  # the week before Seollal/Chuseok: buying rush
)
if len(CALENDAR_COLUMNS) != DEMAND_CALENDAR_FEATURES:
    raise RuntimeError("CALENDAR_COLUMNS and contract.DEMAND_CALENDAR_FEATURES disagree")
# Column positions the network reads.
HOLIDAY, MAJOR = CALENDAR_COLUMNS.index("holiday"), CALENDAR_COLUMNS.index("major_holiday")


def holiday_flags(dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Boolean arrays [D]: ``public``, ``major``, ``after_major``, ``pre_major``."""
    days = [d.date() for d in dates]
    years = {y for d in days for y in (d.year - 1, d.year, d.year + 1)}
    sets: dict[str, set[date]] = {k: set() for k in ("public", "major", "after_major", "pre")}
    for year in years:
        h = year_holidays(year)
        sets["public"] |= h.public
        sets["major"] |= h.major
        sets["after_major"] |= h.after_major
        sets["pre"] |= h.pre_major
    return {
        "public": np.array([d in sets["public"] for d in days], dtype=bool),
        "major": np.array([d in sets["major"] for d in days], dtype=bool),
        "after_major": np.array([d in sets["after_major"] for d in days], dtype=bool),
        "pre_major": np.array([d in sets["pre"] for d in days], dtype=bool),
    }


def calendar_features(dates: pd.DatetimeIndex) -> np.ndarray:
    """[D, C] float32 calendar features of ``dates`` (CALENDAR_COLUMNS)."""
    out = np.zeros((len(dates), DEMAND_CALENDAR_FEATURES), dtype=np.float32)
    out[np.arange(len(dates)), dates.day_of_week.to_numpy()] = 1.0
    angle = 2 * np.pi * (dates.day_of_year.to_numpy() - 1) / 365.25
    out[:, 7], out[:, 8] = np.sin(angle), np.cos(angle)
    flags = holiday_flags(dates)
    out[:, 9], out[:, 10] = flags["public"], flags["major"]
    out[:, 11], out[:, 12] = flags["after_major"], flags["pre_major"]
    return out


@dataclass(frozen=True)
class Panel:
    """A frame as dense arrays. Day index 0 is the frame's first day; ``calendar`` also
    covers LOOKBACK days before it and HORIZON days after its last, so that any window
    whose target starts inside the data can be built."""

    series: tuple[str, ...]
    crops: tuple[str, ...]
    regions: tuple[str, ...]
    dates: pd.DatetimeIndex  # [D]
    demand: np.ndarray  # [S, D] float64, kg
    price: np.ndarray  # [S, D] float64, KRW/kg
    calendar: np.ndarray  # [LOOKBACK + D + HORIZON, C] float32

    @property
    def days(self) -> int:
        return len(self.dates)


def to_panel(frame: pd.DataFrame) -> Panel:
    meta = frame.groupby("series", sort=True)[["crop", "region"]].first()
    demand = frame.pivot(index="series", columns="date", values="demand_kg").sort_index()
    price = frame.pivot(index="series", columns="date", values="price_krw").sort_index()
    first, last = demand.columns.min(), demand.columns.max()
    dates = pd.date_range(first, last, freq="D", unit="ns")
    demand, price = demand.reindex(columns=dates), price.reindex(columns=dates)
    span = pd.date_range(
        first - pd.Timedelta(days=LOOKBACK), last + pd.Timedelta(days=HORIZON), freq="D"
    )
    return Panel(
        series=tuple(str(s) for s in meta.index),
        crops=tuple(str(c) for c in meta["crop"]),
        regions=tuple(str(r) for r in meta["region"]),
        dates=dates,
        demand=demand.fillna(0.0).to_numpy(dtype=np.float64),
        price=price.fillna(0.0).to_numpy(dtype=np.float64),
        calendar=calendar_features(span),
    )


def windows(
    panel: Panel, series_idx: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows whose history ends on day ``end`` (inclusive) of series ``series_idx``.

    Returns history [N, 56, 2], calendar [N, 84, C] and target [N, 28] (float32). Days before
    the data are 0; target days after it are NaN (the caller decides what is valid)."""
    series_idx, end = np.asarray(series_idx, dtype=np.int64), np.asarray(end, dtype=np.int64)
    steps = np.arange(-LOOKBACK + 1, HORIZON + 1)  # [84]: day offsets from `end`
    day = end[:, None] + steps[None, :]  # [N, 84]
    inside = (day >= 0) & (day < panel.days)
    safe = np.clip(day, 0, panel.days - 1)
    demand = np.where(inside, panel.demand[series_idx[:, None], safe], 0.0)  # [N, 84]
    price = np.where(inside, panel.price[series_idx[:, None], safe], 0.0)
    history = np.stack([demand[:, :LOOKBACK], price[:, :LOOKBACK]], axis=-1)  # [N, 56, 2]
    calendar = panel.calendar[day + LOOKBACK]  # [N, 84, C]
    target = np.where(inside[:, LOOKBACK:], demand[:, LOOKBACK:], np.nan)  # [N, 28]
    return history.astype(np.float32), calendar.astype(np.float32), target.astype(np.float32)


def build_inputs(frame: pd.DataFrame, series: str, end: date) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (history [1, 56, 2], calendar [1, 84, C]) to forecast the 28 days after ``end``
    for one series of a data.py frame. Days without a row count as no trade (0)."""
    rows = frame[frame["series"] == series]
    if rows.empty:
        raise KeyError(f"unknown series {series!r}")
    last = pd.Timestamp(end.date() if isinstance(end, datetime) else end)
    days = pd.date_range(last - pd.Timedelta(days=LOOKBACK - 1), periods=LOOKBACK, freq="D")
    indexed = rows.set_index("date")[["demand_kg", "price_krw"]]
    past = indexed.reindex(days).fillna(0.0).to_numpy(dtype=np.float32)  # [56, 2]
    return window_inputs(past, last.date())


def daily_history(rows: Iterable[tuple[date, int, int]], end: date) -> np.ndarray:
    """[56, 2] (kg, KRW/kg) for the days ending on ``end``, from rows of the platform's daily
    aggregate (day, quantity_g, value_krw). A day without a row is 0; the price is 0
    (unknown) where nothing was traded: as ``data.from_daily_aggregate`` gives training."""
    first = end - timedelta(days=LOOKBACK - 1)
    past = np.zeros((LOOKBACK, 2), dtype=np.float32)
    for day, grams, value in rows:
        kg = grams / 1000
        past[(day - first).days] = (kg, value / kg if kg > 0 else 0.0)
    return past


def window_inputs(past: np.ndarray, end: date) -> tuple[np.ndarray, np.ndarray]:
    """(history [1, 56, 2], calendar [1, 84, C]) from the 56 days (kg, KRW/kg) ending on
    ``end``, oldest first: what serving and batch scoring feed the model."""
    if past.shape != (LOOKBACK, 2):
        raise ValueError(f"history must be [{LOOKBACK}, 2], got {list(past.shape)}")
    start = pd.Timestamp(end) - pd.Timedelta(days=LOOKBACK - 1)
    days = pd.date_range(start, periods=WINDOW, freq="D")
    return past.astype(np.float32)[None], calendar_features(days)[None]
