"""What the models are fed, read from the platform: demand histories from the daily
aggregate and the calendar of their window. Online forecasts and batch scoring both read
through here, so both see the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db import demand
from pamtalk.models.demand.features import LOOKBACK, daily_history, window_inputs

Series = tuple[str, str]  # (crop, region)


async def demand_histories(
    session: AsyncSession, series: Sequence[Series], as_of: date
) -> np.ndarray:
    """[S, 56, 2] (kg, KRW/kg) of each series for the days ending on ``as_of``."""
    first = as_of - timedelta(days=LOOKBACK - 1)
    days: dict[Series, list[tuple[date, int, int]]] = {s: [] for s in series}
    for crop, region, day, grams, value in await demand.daily_rows(session, series, first, as_of):
        days[(crop, region)].append((day, grams, value))
    return np.stack([daily_history(days[s], as_of) for s in series])


def demand_inputs(histories: np.ndarray, as_of: date) -> list[np.ndarray]:
    """The model's inputs (history [S, 56, 2], calendar [S, 84, C]) for histories ending on
    ``as_of``: every series shares one calendar."""
    _, calendar = window_inputs(histories[0], as_of)
    return [histories.astype(np.float32), np.repeat(calendar, len(histories), axis=0)]
