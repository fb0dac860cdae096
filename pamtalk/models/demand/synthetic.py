"""Synthetic daily produce demand, so that a machine without ../shared/data can train.

The generator mimics what the Jeju wholesale data shows: a yearly season per crop (winter
crops vanish in summer), a weekday pattern with markets closed on Sundays, closures over New
Year's Day, Seollal and Chuseok with a buying rush the week before, a price that moves
against supply and pushes demand down when it rises, multiplicative noise, and sparse
series that trade only on some days. Deterministic under ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from pamtalk.domain import REGIONS
from pamtalk.models.demand.data import complete_days
from pamtalk.models.demand.features import holiday_flags


@dataclass(frozen=True)
class CropProfile:
    peak_doy: int  # day of year of the seasonal peak
    amplitude: float  # relative seasonal swing; > 1 makes an off-season of zeros
    price_krw: float  # typical price per kg


PROFILES = {
    "tangerine": CropProfile(peak_doy=345, amplitude=1.8, price_krw=2200.0),
    "broccoli": CropProfile(peak_doy=40, amplitude=1.4, price_krw=3500.0),
    "cabbage": CropProfile(peak_doy=70, amplitude=1.3, price_krw=800.0),
    "carrot": CropProfile(peak_doy=20, amplitude=1.2, price_krw=1500.0),
    "radish": CropProfile(peak_doy=15, amplitude=1.1, price_krw=700.0),
    "napa_cabbage": CropProfile(peak_doy=320, amplitude=0.6, price_krw=900.0),
    "onion": CropProfile(peak_doy=160, amplitude=0.4, price_krw=1300.0),
    "potato": CropProfile(peak_doy=190, amplitude=0.5, price_krw=2000.0),
    "lettuce": CropProfile(peak_doy=120, amplitude=0.3, price_krw=4500.0),
    "apple": CropProfile(peak_doy=290, amplitude=0.7, price_krw=4000.0),
}
# Monday..Sunday; wholesale markets are closed on Sundays.
WEEKDAY = np.array([1.2, 1.05, 1.0, 1.0, 1.0, 0.85, 0.0])
PRE_HOLIDAY_LIFT = 1.4
PRICE_ELASTICITY = 0.8  # demand ~ (price / seasonal price) ** -elasticity
SPARSE_SHARE = 0.25  # share of series that trade only on some open days


def synthetic(
    n_series: int = 24, days: int = 3 * 365, seed: int = 0, start: date = date(2020, 1, 1)
) -> pd.DataFrame:
    """``n_series`` daily series of ``days`` days from ``start``, in the data.py frame shape."""
    if n_series < 1 or days < 1:
        raise ValueError("n_series and days must be positive")
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D", unit="ns")
    doy = dates.day_of_year.to_numpy()
    weekday = WEEKDAY[dates.day_of_week.to_numpy()]
    flags = holiday_flags(dates)
    calendar_effect = weekday * np.where(flags["major"], 0.0, 1.0)
    calendar_effect = calendar_effect * np.where(flags["pre_major"], PRE_HOLIDAY_LIFT, 1.0)

    crops, regions = sorted(PROFILES), sorted(REGIONS)
    frames, seen = [], set[str]()
    for i in range(n_series):
        crop = crops[i % len(crops)] if i < len(crops) else str(rng.choice(crops))
        region = str(rng.choice(regions))
        series = f"{crop}:{region}"
        k = 2
        while series in seen:
            series, k = f"{crop}:{region}:{k}", k + 1
        seen.add(series)
        profile = PROFILES[crop]

        # Season in [0, 1 + amplitude]; amplitudes above 1 clip to an off-season of zeros.
        phase = 2 * np.pi * (doy - profile.peak_doy) / 365.25
        season = np.clip(1.0 + profile.amplitude * np.cos(phase), 0.0, None)
        # Price: dear when supply is short, plus a slow random walk (AR(1) in log space).
        walk = np.zeros(days)
        shocks = rng.normal(0.0, 0.04, days)
        for t in range(1, days):
            walk[t] = 0.97 * walk[t - 1] + shocks[t]
        seasonal_price = profile.price_krw * np.exp(-0.25 * np.cos(phase))
        price = seasonal_price * np.exp(walk)
        level = np.exp(rng.uniform(np.log(50.0), np.log(50_000.0)))
        noise = rng.lognormal(-0.5 * 0.3**2, 0.3, days)  # mean 1
        demand = level * season * calendar_effect * np.exp(-PRICE_ELASTICITY * walk) * noise
        if rng.random() < SPARSE_SHARE:
            demand = demand * (rng.random(days) < rng.uniform(0.15, 0.6))
        demand = np.round(demand, 1)
        frames.append(
            pd.DataFrame(
                {
                    "series": series,
                    "crop": crop,
                    "region": region,
                    "date": dates,
                    "demand_kg": demand,
                    "price_krw": np.where(demand > 0, np.round(price), 0.0),
                }
            )
        )
    return complete_days(pd.concat(frames, ignore_index=True))
