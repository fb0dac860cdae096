"""Korean public holidays, and the wholesale-market days they shape.

Seollal (lunar 1/1), Chuseok (lunar 8/15) and Buddha's Birthday (lunar 4/8) move with the
Korean lunisolar calendar, which follows Korea Standard Time and so sometimes differs by a
day from the Chinese one (Seollal 2027 and 2028). Their solar dates are hard-coded below for
2018-2030 from the Korea Astronomy and Space Science Institute (KASI) lunar-solar conversion,
https://astro.kasi.re.kr/life/pageView/8 (cross-checked against the KASI tables shipped in the
`korean_lunar_calendar` package). Outside those years only the fixed holidays are known.

Substitute holidays follow the Regulation on Holidays of Government Offices
(관공서의 공휴일에 관한 규정, art. 3): Seollal/Chuseok days on a Sunday or on another holiday,
and Children's Day on a weekend or another holiday (since 2014); Independence Movement Day,
Liberation Day, National Foundation Day and Hangul Day on a weekend (since 2021-08-04);
Buddha's Birthday and Christmas on a weekend (since 2023-05-04) -> the next non-holiday day.
One-off days (elections, temporary holidays) are not predictable and are left out.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

SEOLLAL = {
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 7),
    2028: date(2028, 1, 27),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
}
CHUSEOK = {
    2018: date(2018, 9, 24),
    2019: date(2019, 9, 13),
    2020: date(2020, 10, 1),
    2021: date(2021, 9, 21),
    2022: date(2022, 9, 10),
    2023: date(2023, 9, 29),
    2024: date(2024, 9, 17),
    2025: date(2025, 10, 6),
    2026: date(2026, 9, 25),
    2027: date(2027, 9, 15),
    2028: date(2028, 10, 3),
    2029: date(2029, 9, 22),
    2030: date(2030, 9, 12),
}
BUDDHAS_BIRTHDAY = {
    2018: date(2018, 5, 22),
    2019: date(2019, 5, 12),
    2020: date(2020, 4, 30),
    2021: date(2021, 5, 19),
    2022: date(2022, 5, 8),
    2023: date(2023, 5, 27),
    2024: date(2024, 5, 15),
    2025: date(2025, 5, 5),
    2026: date(2026, 5, 24),
    2027: date(2027, 5, 13),
    2028: date(2028, 5, 2),
    2029: date(2029, 5, 20),
    2030: date(2030, 5, 9),
}
FIRST_LUNAR_YEAR, LAST_LUNAR_YEAR = min(SEOLLAL), max(SEOLLAL)

# (month, day) of the fixed holidays, and the date from which a weekend one is substituted.
NEW_YEAR = (1, 1)
CHILDRENS_DAY = (5, 5)
_NATIONAL_DAYS = ((3, 1), (8, 15), (10, 3), (10, 9))
_OTHER_FIXED = ((6, 6), (12, 25))
_BLOCK_SUBSTITUTES_FROM = date(2014, 1, 1)
_NATIONAL_SUBSTITUTES_FROM = date(2021, 8, 4)
_BUDDHA_CHRISTMAS_SUBSTITUTES_FROM = date(2023, 5, 4)
_SUNDAY, _SATURDAY = 6, 5
PRE_HOLIDAY_DAYS = 7  # the shopping week before Seollal/Chuseok


@dataclass(frozen=True)
class YearHolidays:
    public: frozenset[date]  # every public holiday, substitutes included (Sundays are not listed)
    major: frozenset[date]  # New Year's Day, the Seollal/Chuseok blocks and their substitutes
    after_major: frozenset[date]  # the first working day after New Year's Day or a block
    pre_major: frozenset[date]  # the week before a Seollal/Chuseok block


def _block(center: date) -> list[date]:
    return [center - timedelta(days=1), center, center + timedelta(days=1)]


def _is_off(day: date, holidays: set[date]) -> bool:
    return day.weekday() == _SUNDAY or day in holidays


def _next_working(after: date, holidays: set[date]) -> date:
    day = after + timedelta(days=1)
    while _is_off(day, holidays):
        day += timedelta(days=1)
    return day


@functools.lru_cache(maxsize=64)
def year_holidays(year: int) -> YearHolidays:
    blocks = [_block(d[year]) for d in (SEOLLAL, CHUSEOK) if year in d]
    buddha = BUDDHAS_BIRTHDAY.get(year)
    fixed = [date(year, m, d) for m, d in (NEW_YEAR, CHILDRENS_DAY, *_NATIONAL_DAYS, *_OTHER_FIXED)]
    # How many holidays fall on each day: 2 or more means two holidays coincide.
    base = Counter([*fixed, *(day for block in blocks for day in block)])
    if buddha is not None:
        base[buddha] += 1
    holidays = set(base)

    # Substitutes, earliest rule first so that one never lands on another.
    major = {date(year, *NEW_YEAR)}
    for block in blocks:
        major.update(block)
        if block[0] >= _BLOCK_SUBSTITUTES_FROM and any(
            d.weekday() == _SUNDAY or base[d] > 1 for d in block
        ):
            substitute = _next_working(block[-1], holidays)
            holidays.add(substitute)
            major.add(substitute)
    children = date(year, *CHILDRENS_DAY)
    if children >= _BLOCK_SUBSTITUTES_FROM and (
        children.weekday() in (_SATURDAY, _SUNDAY) or base[children] > 1
    ):
        holidays.add(_next_working(children, holidays))
    weekend_rules = [(date(year, m, d), _NATIONAL_SUBSTITUTES_FROM) for m, d in _NATIONAL_DAYS]
    weekend_rules.append((date(year, 12, 25), _BUDDHA_CHRISTMAS_SUBSTITUTES_FROM))
    if buddha is not None and buddha != children:  # a shared day has one substitute, above
        weekend_rules.append((buddha, _BUDDHA_CHRISTMAS_SUBSTITUTES_FROM))
    for day, since in sorted(weekend_rules):
        if day >= since and day.weekday() in (_SATURDAY, _SUNDAY):
            holidays.add(_next_working(day, holidays))

    after = {_next_working(date(year, *NEW_YEAR), holidays)}
    pre: set[date] = set()
    for block in blocks:
        end = max(d for d in major if block[0] <= d <= block[-1] + timedelta(days=7))
        after.add(_next_working(end, holidays))
        pre.update(block[0] - timedelta(days=k) for k in range(1, PRE_HOLIDAY_DAYS + 1))
    return YearHolidays(
        public=frozenset(holidays),
        major=frozenset(major),
        after_major=frozenset(after),
        pre_major=frozenset(pre - holidays),
    )
