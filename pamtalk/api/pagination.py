"""Opaque keyset cursors bound to their query.

A cursor is base64url-encoded JSON ``{"k": [sort key of the last row], "q": scope}``, where
the scope is a short hash of the list's normalised filters (the parsed values, defaults
included, not the raw query string). A cursor sent with other filters than the page it came
from is refused (400) instead of silently paginating a different list.

    filters = {"region": region, "crop": crop}
    after = pagination.decode(cursor, (int,), filters=filters)[0] if cursor else 0
    ... "next_cursor": pagination.encode(last.id, filters=filters)

``filters`` defaults to none (a cursor bound to an unfiltered list) only so that a list not
yet converted keeps working; every filtered list passes its filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import orjson
from fastapi import Query

from pamtalk.errors import BadRequest, InvalidInput

Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        description="next_cursor of the previous page; send it with the same filters",
    ),
]


def scope(filters: Mapping[str, object]) -> str:
    """A short hash of the filters a page was listed with (None and absent are the same)."""
    present = {name: value for name, value in filters.items() if value is not None}
    canonical = orjson.dumps(present, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def encode(*key: object, filters: Mapping[str, object] | None = None) -> str:
    payload = orjson.dumps({"k": list(key), "q": scope(filters or {})})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode(
    cursor: str,
    types: tuple[Callable[[Any], Any], ...],
    filters: Mapping[str, object] | None = None,
) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
        values, bound = payload["k"], payload["q"]
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        key = tuple(t(v) for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor is not valid; pass next_cursor from a previous page") from exc
    filters = filters or {}
    if bound != scope(filters):
        raise BadRequest(
            "cursor belongs to a list with other filters; send next_cursor with the same "
            "filters as the page it came from, or drop it to start from the first page",
            details={"filters": sorted(filters)},
        )
    return key
