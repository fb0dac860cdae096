"""Model outputs -> the answers users see, in one place for REST and nightly batch scoring, so
that an answer does not depend on the path that asked for it.

    quantiles = demand_quantiles(outputs, horizon)     # [S, H, 3] kg, >= 0, to the gram
    demand_forecast(quantiles[0], as_of)               # [{"date", "p10", "p50", "p90"}, ...]
    answers = esg_answers(scores, masks)               # one EsgAnswer per farm
    answers[0].grade                                   # graded on the rounded overall p50
    audit(profile)                                     # the methodology's score of the report
    history_summary(past, "platform")                  # where the history came from, how full

Everything rounds before it grades: the grade of a score is the grade of the number shown.
Numbers are shown as a reader wants them: points to 2 decimals, other figures to 6
significant digits (no 7.800000000000001), and no server paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from pamtalk.models.contract import DEMAND_QUANTILES, ESG_SCORES
from pamtalk.models.esg import methodology

QUANTILE_NAMES = tuple(f"p{round(q * 100)}" for q in DEMAND_QUANTILES)
KG_DECIMALS = 3  # to the gram
POINT_DECIMALS = 2
SIGNIFICANT = 6  # other figures of the breakdown (factors, footprints, ratios)
POINT_KEYS = frozenset({"score", "points", "max_points"})
PILLARS = ("environmental", "social", "governance", "overall")


def demand_quantiles(outputs: np.ndarray, horizon: int) -> np.ndarray:
    """[S, horizon, 3] float64 kg from the model's [S, 28, 3]: a quantile below zero is the
    network's extrapolation (demand cannot be negative), and grams are the finest unit."""
    clipped = np.maximum(outputs[:, :horizon].astype(np.float64), 0.0)
    return np.round(clipped, KG_DECIMALS)


def forecast_dates(as_of: date, horizon: int) -> list[date]:
    """The days a forecast made after ``as_of`` covers."""
    return [as_of + timedelta(days=h + 1) for h in range(horizon)]


def demand_forecast(quantiles: np.ndarray, as_of: date) -> list[dict[str, Any]]:
    """One series' [H, 3] quantiles as dated p10/p50/p90 entries."""
    days = forecast_dates(as_of, len(quantiles))
    return [
        {"date": day.isoformat(), **dict(zip(QUANTILE_NAMES, row.tolist(), strict=True))}
        for day, row in zip(days, quantiles, strict=True)
    ]


@dataclass(frozen=True)
class EsgAnswer:
    scores: dict[str, dict[str, float]]  # pillar -> {"p10", "p50", "p90"} in points
    grade: str  # of the overall p50 as shown
    reported_share: float  # of the model's inputs the farm reported

    def p50(self) -> dict[str, float]:
        return {pillar: q["p50"] for pillar, q in self.scores.items()}


def esg_answers(scores: np.ndarray, masks: np.ndarray) -> list[EsgAnswer]:
    """The model's [F, 4 pillars, 3 quantiles] scores and the [F, features] masks it was fed,
    as one answer per farm: clipped to 0-100 points and rounded before grading."""
    points = np.round(np.clip(scores.astype(np.float64), 0.0, 100.0), POINT_DECIMALS)
    shares = np.round(masks.astype(np.float64).mean(axis=1), 3)
    answers = []
    for farm_points, share in zip(points.tolist(), shares.tolist(), strict=True):
        by_pillar = {
            pillar: dict(zip(QUANTILE_NAMES, quantiles, strict=True))
            for pillar, quantiles in zip(ESG_SCORES, farm_points, strict=True)
        }
        grade = methodology.grade(by_pillar["overall"]["p50"])
        answers.append(EsgAnswer(by_pillar, grade, share))
    return answers


def history_summary(past: np.ndarray, source: str) -> dict[str, Any]:
    """How much history a forecast stood on: ``past`` is one series' [56, 2] (kg, KRW/kg).
    A platform series without a single day of sales says so (``history_source: "none"``)
    rather than passing 56 days of zeros off as data."""
    with_data = int(np.count_nonzero(past[:, 0] > 0))
    return {
        "history_days": len(past),
        "history_days_with_data": with_data,
        "history_source": "none" if source == "platform" and with_data == 0 else source,
    }


def audit(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The methodology's audit of what a farm reported (missing inputs earn no points),
    rounded as shown and graded on the rounded overall score."""
    found = methodology.assess(profile)
    points = {pillar: round(float(getattr(found, pillar)), POINT_DECIMALS) for pillar in PILLARS}
    shown_grade = methodology.grade(points["overall"])
    breakdown = _readable(found.breakdown)
    breakdown["overall"] |= {"score": points["overall"], "grade": shown_grade}
    breakdown.get("factors", {}).pop("origin", None)  # a server path, not the user's business
    return {**points, "grade": shown_grade, "breakdown": breakdown}


def _readable(value: Any, key: str = "") -> Any:
    """``value`` with its floats rounded: points to POINT_DECIMALS, the rest to SIGNIFICANT
    digits."""
    # The methodology's breakdown is plain dicts, lists, floats and strings: tell those
    # apart by exact type first (a batch chunk walks ~180 values per farm), the ABCs after.
    kind = type(value)
    if kind is dict:
        return {k: _readable(v, k) for k, v in value.items()}
    if kind is float:
        return (
            round(value, POINT_DECIMALS) if key in POINT_KEYS else float(f"{value:.{SIGNIFICANT}g}")
        )
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is list:
        return [_readable(v, key) for v in value]
    if isinstance(value, Mapping):
        return {k: _readable(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(v, key) for v in value]
    if isinstance(value, float):
        if key in POINT_KEYS:
            return round(value, POINT_DECIMALS)
        return float(f"{value:.{SIGNIFICANT}g}")
    return value


def assessment(answer: EsgAnswer, audited: dict[str, Any]) -> dict[str, Any]:
    """The scores, grade and breakdown columns of an esg_assessments row, online or batch."""
    return {
        **answer.p50(),
        "grade": answer.grade,
        "breakdown": {"model": answer.scores, "methodology": audited},
    }
