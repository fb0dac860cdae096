"""The methodology's audit as served and stored: the fast walk that rounds its breakdown gives
exactly what the plain recursive walk it replaced gave, for every farm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pamtalk.models.esg import methodology, profiles
from pamtalk.serving import answers


def _readable_as_before(value: Any, key: str = "") -> Any:
    """answers._readable before issue 14: isinstance checks all the way down."""
    if isinstance(value, Mapping):
        return {k: _readable_as_before(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable_as_before(v, key) for v in value]
    if isinstance(value, float):
        if key in answers.POINT_KEYS:
            return round(value, answers.POINT_DECIMALS)
        return float(f"{value:.{answers.SIGNIFICANT}g}")
    return value


def test_every_farms_audit_is_byte_for_byte_the_plain_walks() -> None:
    farms = [*profiles.generate(1000, seed=11), {}, {"crops": ["rice"], "yield_kg_per_year": 0}]
    for farm in farms:
        found = methodology.assess(farm)
        walked = _readable_as_before(found.breakdown)
        overall = round(found.overall, answers.POINT_DECIMALS)  # graded rounded, as audit()
        walked["overall"] |= {"score": overall, "grade": methodology.grade(overall)}
        served = answers.audit(farm)["breakdown"]
        walked["factors"].pop("origin", None)
        assert orjson.dumps(served) == orjson.dumps(walked)
