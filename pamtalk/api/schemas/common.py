"""Field types shared by the resource schemas."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from pamtalk.domain import CROPS, REGIONS

MAX_ID = 2**63 - 1
# Every date and datetime the API accepts lies in these years: outside them a value is a
# mistake, and near the ends of Python's range a UTC conversion or a day's arithmetic
# overflows (0001-01-01T00:00:00+01:00 is before year 1 in UTC).
MIN_YEAR, MAX_YEAR = 2000, 2099


class Schema(BaseModel):
    # NaN/inf are rejected, unknown fields are an error rather than silently dropped.
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid", from_attributes=True)


def storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


# Bidirectional embeddings, overrides and isolates (and the marks): in a name they make
# what is shown differ from what is stored ("Trojan Source", spoofed names in lists).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def single_line(value: str) -> str:
    """Names and one-line texts: no control characters (newlines, tabs, escapes), no bidi
    controls; otherwise ``storable``."""
    for char in value:
        if char in _BIDI_CONTROLS:
            raise ValueError(f"must not contain bidirectional controls (U+{ord(char):04X})")
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"must not contain control characters (U+{ord(char):04X})")
    return storable(value)


UNKNOWN_VALUE = "unknown_value"  # the error type; its ctx["valid"] lists the valid values


def one_of(kind: str, valid: Iterable[str]) -> AfterValidator:
    """Membership check whose error names every valid value (once: the error handler shows
    the list in the message and as ``details[].valid``, not in each ``msg`` again)."""
    valid = tuple(valid)

    def check(value: str) -> str:
        if value not in valid:
            raise PydanticCustomError(
                UNKNOWN_VALUE,
                "unknown {kind} '{value}'",
                {"kind": kind, "value": value, "valid": valid},
            )
        return value

    return AfterValidator(check)


# Slugs are matched case-insensitively ("Jeju", " JEJU ") and answered in lowercase.
RegionSlug = Annotated[
    str,
    StringConstraints(max_length=32, strip_whitespace=True, to_lower=True),
    one_of("region", REGIONS),
    WithJsonSchema({"type": "string", "enum": list(REGIONS), "example": "jeju"}),
]
CropSlug = Annotated[
    str,
    StringConstraints(max_length=32, strip_whitespace=True, to_lower=True),
    one_of("crop", CROPS),
    WithJsonSchema({"type": "string", "enum": list(CROPS), "example": "cabbage"}),
]
# Request bodies are JSON: their numbers and booleans are strict (``true`` is not 1, 1 is not
# ``true``, "5" is not 5; a JSON integer is still a float). Query parameters arrive as text,
# so their ids are parsed (QueryId).
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(single_line),
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(single_line)
]


def bounded_moment(moment: datetime) -> datetime:
    """``moment`` in UTC (naive means UTC), refused outside MIN_YEAR..MAX_YEAR; the year is
    checked before converting, so the conversion cannot overflow."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def bounded_day(day: date) -> date:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return day


# A point in time from a client: ISO 8601, naive means UTC, answered in UTC.
Moment = Annotated[datetime, AfterValidator(bounded_moment)]
Day = Annotated[date, AfterValidator(bounded_day)]
