"""Opaque keyset cursors, signed and bound to their query.

A cursor is ``base64url(payload) "." base64url(tag)``: the payload is JSON
``{"k": [sort key of the last row], "q": scope}``, where the scope is a short hash of the
list's normalised filters (the parsed values, defaults included, not the raw query string);
the tag is an HMAC-SHA256 of the payload under ``settings.signing_key("cursor")``. A cursor
the server did not sign (tampered, truncated, made up) is a 400; so is one sent with other
filters than the page it came from, instead of silently paginating a different list. The
key's values are range-checked all the same (a row id fits a BIGINT, a timestamp lies in
``schemas.common``'s bounds), so a leaked key still cannot reach the database with values
it overflows on.

    async def list_farms(pages: PagesDep, region: ..., cursor: pagination.Cursor = None):
        filters = {"region": region, "crop": crop}
        after = pages.decode(cursor, (pagination.row_id,), filters=filters)[0] if cursor else 0
        ... "next_cursor": pages.encode(last.id, filters=filters)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query

from pamtalk.api.deps import SettingsDep
from pamtalk.api.schemas.common import MAX_ID, bounded_moment
from pamtalk.errors import BadRequest

Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        description="next_cursor of the previous page; send it with the same filters",
    ),
]

_TAG_BYTES = 16  # 128 bits of HMAC-SHA256: forging one is out of reach
_INVALID = "cursor is not valid; pass next_cursor from a previous page unchanged"


def row_id(value: Any) -> int:
    """A row id from a cursor: a JSON integer (not a bool, not a float) that fits a BIGINT."""
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ValueError("row id out of range")
    return value


def timestamp(value: Any) -> datetime:
    """A timestamp from a cursor: an ISO 8601 string with an offset, within the bounds
    every datetime the API accepts has."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("timestamp without an offset")
    return bounded_moment(moment)


def scope(filters: Mapping[str, object]) -> str:
    """A short hash of the filters a page was listed with (None and absent are the same)."""
    present = {name: value for name, value in filters.items() if value is not None}
    canonical = orjson.dumps(present, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pages:
    """Signs and checks the cursors of every list, under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, *key: object, filters: Mapping[str, object] | None = None) -> str:
        payload = orjson.dumps({"k": list(key), "q": scope(filters or {})})
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(
        self,
        cursor: str,
        types: tuple[Callable[[Any], Any], ...],
        filters: Mapping[str, object] | None = None,
    ) -> tuple[Any, ...]:
        """The sort key ``cursor`` carries, each value checked by its entry in ``types``
        (``row_id``, ``timestamp``). Anything else than a cursor this server signed for
        these filters is a 400."""
        try:
            body, _, tag = cursor.partition(".")
            payload = _unb64(body)
            signed = hmac.compare_digest(_unb64(tag), self._tag(payload))
        except (ValueError, binascii.Error) as exc:
            raise BadRequest(_INVALID) from exc
        if not signed:
            raise BadRequest(_INVALID)
        try:
            data = orjson.loads(payload)
            values, bound = data["k"], data["q"]
            if not isinstance(values, list) or len(values) != len(types):
                raise ValueError("wrong number of values")
            key = tuple(check(v) for check, v in zip(types, values, strict=True))
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            raise BadRequest(_INVALID) from exc
        filters = filters or {}
        if bound != scope(filters):
            raise BadRequest(
                "cursor belongs to a list with other filters; send next_cursor with the same "
                "filters as the page it came from, or drop it to start from the first page",
                details={"filters": sorted(filters)},
            )
        return key


async def get_pages(settings: SettingsDep) -> Pages:
    return Pages(settings.signing_key("cursor"))


PagesDep = Annotated[Pages, Depends(get_pages)]
