from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pamtalk.domain import CROPS, REGIONS
from pamtalk.models.demand.data import (
    COLUMNS,
    JEJU_TRAIN,
    fingerprint,
    from_daily_aggregate,
    load_csv,
    load_jeju,
    validate,
)
from pamtalk.models.demand.synthetic import synthetic


def assert_one_shape(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == COLUMNS
    assert frame["date"].dtype == np.dtype("datetime64[ns]")
    assert frame["demand_kg"].dtype == np.float64 and frame["price_krw"].dtype == np.float64
    assert set(frame["crop"]) <= set(CROPS) and set(frame["region"]) <= set(REGIONS)
    validate(frame)


def test_daily_aggregate_rows(tmp_path: Path) -> None:
    rows: list[Mapping[str, Any] | Sequence[Any]] = [
        ("carrot", "jeju", date(2024, 1, 1), 1500, 3000),
        {
            "crop": "carrot",
            "region": "jeju",
            "day": "2024-01-04",
            "quantity_g": 2000,
            "value_krw": 1000,
        },
        ("carrot", "jeju", "2024-01-04", 2000, 3000),  # same day: summed
        ("onion", "seoul", "2024-01-02", 500, 0),
    ]
    frame = from_daily_aggregate(rows)
    assert_one_shape(frame)
    carrot = frame[frame["series"] == "carrot:jeju"].set_index("date")
    assert list(carrot.index) == list(pd.date_range("2024-01-01", "2024-01-04", freq="D"))
    assert carrot["demand_kg"].tolist() == [1.5, 0.0, 0.0, 4.0]  # missing days filled with 0
    assert carrot["price_krw"].tolist() == [2000.0, 0.0, 0.0, 1000.0]  # KRW per kg
    assert set(frame["series"]) == {"carrot:jeju", "onion:seoul"}
    assert from_daily_aggregate([]).empty
    with pytest.raises(ValueError, match="unknown crop"):
        from_daily_aggregate([("dragonfruit", "jeju", "2024-01-01", 1, 1)])


def test_csv_of_the_jeju_shape(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text(
        "ID,timestamp,item,corporation,location,supply(kg),price(원/kg)\n"
        "TG_A_J_20230101,2023-01-01,TG,A,J,0.0,0.0\n"
        "TG_A_J_20230102,2023-01-02,TG,A,J,120.0,1500.0\n"
        "TG_A_J_20230104,2023-01-04,TG,A,J,80.0,1400.0\n"
        "x,2023-01-03,carrot,B,seoul,10.0,900.0\n",
        encoding="utf-8",
    )
    frame = load_csv(path)
    assert_one_shape(frame)
    assert set(frame["series"]) == {"tangerine:jeju:A", "carrot:seoul:B"}
    tangerine = frame[frame["series"] == "tangerine:jeju:A"]
    assert tangerine["demand_kg"].tolist() == [0.0, 120.0, 0.0, 80.0]  # the gap on the 3rd
    assert len(frame) == 8  # both series span the frame's four days
    bad = tmp_path / "bad.csv"
    bad.write_text(
        path.read_text(encoding="utf-8").replace("TG,A,J,0.0", "XX,A,J,0.0"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="unknown item"):
        load_csv(bad)


def test_synthetic_has_the_one_shape() -> None:
    assert_one_shape(synthetic(n_series=5, days=60, seed=1))


def test_validate_rejects_gaps() -> None:
    frame = synthetic(n_series=2, days=30, seed=0)
    with pytest.raises(ValueError, match="one row per day"):
        validate(frame.drop(index=frame.index[5]))


def test_jeju_data() -> None:
    if not JEJU_TRAIN.is_file():
        pytest.skip(f"{JEJU_TRAIN} absent: the Jeju data is only in ../shared (fresh machine)")
    frame = load_jeju()
    assert_one_shape(frame)
    assert frame["series"].nunique() == 39
    assert frame["date"].min() == pd.Timestamp("2019-01-01")
    assert frame["date"].max() == pd.Timestamp("2023-03-03")
    assert len(frame) == 39 * 1523
    assert set(frame["crop"]) == {"tangerine", "broccoli", "cabbage", "carrot", "radish"}
    assert set(frame["region"]) == {"jeju", "seoul"}
    sundays = frame[frame["date"].dt.day_of_week == 6]
    assert (sundays["demand_kg"] == 0).mean() > 0.99
    raw = pd.read_csv(JEJU_TRAIN)
    assert frame["demand_kg"].sum() == pytest.approx(raw["supply(kg)"].sum())


def test_missing_jeju_file_says_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shared/data"):
        load_jeju(tmp_path / "absent.csv")


def test_fingerprint(small_frame: pd.DataFrame) -> None:
    shuffled = small_frame.sample(frac=1.0, random_state=0)
    assert fingerprint(shuffled) == fingerprint(small_frame)
    changed = small_frame.copy()
    changed.loc[changed.index[10], "demand_kg"] += 1.0
    assert fingerprint(changed) != fingerprint(small_frame)
    assert len(fingerprint(small_frame)) == 64
