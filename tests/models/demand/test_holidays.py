from __future__ import annotations

from datetime import date

import pandas as pd

from pamtalk.models.demand.features import holiday_flags
from pamtalk.models.demand.holidays import year_holidays


def test_seollal_follows_the_korean_not_the_chinese_calendar() -> None:
    # KST puts the 2027 and 2028 new moons a day later than China Standard Time does.
    assert date(2027, 2, 7) in year_holidays(2027).major
    assert date(2028, 1, 27) in year_holidays(2028).major
    assert date(2028, 1, 25) not in year_holidays(2028).public


def test_substitute_holidays() -> None:
    public = year_holidays(2023).public
    assert date(2023, 1, 24) in public  # Seollal block on a Sunday
    assert date(2023, 5, 29) in public  # Buddha's Birthday on a Saturday (rule since 2023-05)
    assert date(2021, 10, 4) in year_holidays(2021).public  # National Foundation Day, Sunday
    assert date(2019, 5, 6) in year_holidays(2019).public  # Children's Day, Sunday
    assert date(2025, 5, 6) in year_holidays(2025).public  # Children's Day = Buddha's Birthday
    assert date(2028, 10, 5) in year_holidays(2028).major  # Chuseok block overlaps Oct 3
    # Before 2021-08 a national day on a weekend was not substituted.
    assert date(2020, 8, 17) not in year_holidays(2020).public


def test_market_flags_on_the_jeju_closures() -> None:
    days = pd.date_range("2022-09-05", "2022-09-14", freq="D")
    flags = holiday_flags(days)
    major = {d.date() for d, m in zip(days, flags["major"], strict=True) if m}
    assert major == {date(2022, 9, d) for d in (9, 10, 11, 12)}
    after = {d.date() for d, m in zip(days, flags["after_major"], strict=True) if m}
    assert after == {date(2022, 9, 13)}
    assert flags["pre_major"][:3].all()  # 5th-7th: the week before the block


def test_years_outside_the_lunar_table_keep_the_fixed_holidays() -> None:
    h = year_holidays(2040)
    assert date(2040, 3, 1) in h.public and date(2040, 1, 1) in h.major
    assert not h.pre_major
