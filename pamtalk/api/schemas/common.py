"""Field types shared by the resource schemas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from pamtalk.domain import CROPS, REGIONS

MAX_ID = 2**63 - 1


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
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(storable),
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(storable)
]
