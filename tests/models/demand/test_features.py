from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pamtalk.models.contract import DEMAND
from pamtalk.models.demand.features import (
    CALENDAR_COLUMNS,
    build_inputs,
    calendar_features,
    to_panel,
    windows,
)


def contract_shape(i: int, batch: int) -> tuple[int, ...]:
    return (batch, *(d for d in DEMAND.inputs[i].shape[1:] if d is not None))


def test_calendar_features() -> None:
    days = pd.date_range("2023-01-16", "2023-01-29", freq="D")  # two weeks around Seollal
    cal = calendar_features(days)
    assert cal.shape == (14, len(CALENDAR_COLUMNS)) and cal.dtype == np.float32
    assert (cal[:, :7].sum(axis=1) == 1).all()
    assert cal[0, 0] == 1 and cal[6, 6] == 1  # Monday, Sunday
    assert np.allclose(cal[:, 7] ** 2 + cal[:, 8] ** 2, 1.0, atol=1e-6)
    major = CALENDAR_COLUMNS.index("major_holiday")
    assert [d.day for d, m in zip(days, cal[:, major], strict=True) if m] == [21, 22, 23, 24]


def test_windows_match_the_contract(small_frame: pd.DataFrame) -> None:
    panel = to_panel(small_frame)
    s, e = np.array([0, 3, 5]), np.array([100, 55, panel.days - 1])
    history, calendar, target = windows(panel, s, e)
    assert history.shape == contract_shape(0, 3) and history.dtype == np.float32
    assert calendar.shape == contract_shape(1, 3) and calendar.dtype == np.float32
    assert target.shape == (3, 28)
    assert np.array_equal(history[0, :, 0], panel.demand[0, 45:101].astype(np.float32))
    assert np.array_equal(target[0], panel.demand[0, 101:129].astype(np.float32))
    assert np.isnan(target[2]).all()  # after the data: unknown, not zero


def test_build_inputs_equals_the_training_windows(small_frame: pd.DataFrame) -> None:
    panel = to_panel(small_frame)
    series = panel.series[4]
    end = panel.dates[200].date()
    history, calendar = build_inputs(small_frame, series, end)
    ref_h, ref_c, _ = windows(panel, np.array([4]), np.array([200]))
    assert history.shape == contract_shape(0, 1) and calendar.shape == contract_shape(1, 1)
    assert np.array_equal(history, ref_h) and np.array_equal(calendar, ref_c)


def test_build_inputs_pads_unknown_days_with_zero(small_frame: pd.DataFrame) -> None:
    series = small_frame["series"].iloc[0]
    first = small_frame["date"].min().date()
    history, calendar = build_inputs(small_frame, series, first)  # 55 days before the data
    assert (history[0, :55] == 0).all()
    assert calendar[0, -1, :7].sum() == 1  # the future calendar is still known
    with pytest.raises(KeyError):
        build_inputs(small_frame, "no:such", date(2020, 5, 1))
