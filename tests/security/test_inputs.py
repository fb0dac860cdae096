"""Finding 4: inputs that gave a 500. Cursors are HMAC-signed and range-checked (anything
the server did not sign is a 400), dates and datetimes are bounded (422), and none of it
reaches the database as a value it overflows on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from pamtalk.api import pagination
from pamtalk.api.schemas.common import MAX_ID, MAX_YEAR, MIN_YEAR, Moment
from pamtalk.db.models import FarmStatus, Role
from pamtalk.errors import BadRequest
from pamtalk.settings import Settings
from tests.conftest import Actor, create_farm

KEY = Settings(env="test").signing_key("cursor")
PAGES = pagination.Pages(KEY)
FARM_FILTERS = {"status": FarmStatus.active}
MOMENT = TypeAdapter(Moment)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def unsigned(*key: object, scope: str) -> str:
    """A cursor as the old code made them: base64 JSON, no signature."""
    payload = json.dumps({"k": list(key), "q": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def signed(*key: object, scope: str) -> str:
    """The same, signed with the server's key (what a leaked key could make)."""
    payload = json.dumps({"k": list(key), "q": scope}, separators=(",", ":")).encode()
    tag = hmac.new(KEY, payload, hashlib.sha256).digest()[:16]
    return ".".join(base64.urlsafe_b64encode(p).decode().rstrip("=") for p in (payload, tag))


# The audit's cursors: ids past BIGINT and a float, unsigned as before, and signed with the
# server's own key (what a leaked key could make): a 400 either way, never a 500.
OVERFLOWING = [2**63, 10**30, 1e300, -1, True, "1", None, [1]]


async def test_the_audits_cursors_are_refused(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.admin].headers
    audit = await client.get("/v1/farms?cursor=WzkyMjMzNzIwMzY4NTQ3NzU4MDhd", headers=admin)
    assert audit.status_code == 400, audit.text
    scope = pagination.scope({"status": "active"})
    assert signed(7, scope=scope) == PAGES.encode(7, filters=FARM_FILTERS)
    for value in OVERFLOWING:
        for cursor in (unsigned(value, scope=scope), signed(value, scope=scope)):
            answer = await client.get(f"/v1/farms?cursor={cursor}", headers=admin)
            assert answer.status_code == 400, (value, answer.text)
            assert "cursor is not valid" in answer.json()["error"]["message"]
    tx_cursor = signed("0001-01-01T00:00:00+01:00", 1, scope=pagination.scope({}))
    answer = await client.get(f"/v1/transactions?cursor={tx_cursor}", headers=admin)
    assert answer.status_code == 400, answer.text


async def test_since_and_until_that_overflow_are_422(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.admin].headers
    for query in (
        "since=0001-01-01T00:00:00%2B01:00",  # the audit's: before year 1 in UTC
        "until=9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "since=1999-12-31T00:00:00Z",
        "until=2100-01-01T00:00:00",
    ):
        answer = await client.get(f"/v1/transactions?{query}", headers=admin)
        assert answer.status_code == 422, (query, answer.text)
        assert "between the years" in answer.json()["error"]["message"]
    fine = await client.get("/v1/transactions?since=2026-01-01T09:00:00%2B09:00", headers=admin)
    assert fine.status_code == 200, fine.text


async def test_request_bodies_dates_are_bounded(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.admin].headers
    nightly = await client.post(
        "/v1/jobs", json={"kind": "nightly", "run_date": "0001-01-01"}, headers=admin
    )
    assert nightly.status_code == 422, nightly.text
    demand = {"crop": "cabbage", "region": "jeju", "as_of": "9999-12-31"}
    answer = await client.post("/v1/predictions/demand", json=demand, headers=admin)
    assert answer.status_code == 422, answer.text


async def test_a_real_cursor_still_pages(
    client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    farmer = actors[Role.farmer]
    ids = [(await create_farm(client, farmer))["id"] for _ in range(3)]
    first = (await client.get("/v1/farms?limit=2", headers=farmer.headers)).json()
    cursor = first["next_cursor"]
    assert "." in cursor  # payload.signature
    second = await client.get(f"/v1/farms?limit=2&cursor={cursor}", headers=farmer.headers)
    assert [f["id"] for f in first["items"] + second.json()["items"]] == ids


# -- properties --------------------------------------------------------------------------

row_ids = st.integers(min_value=0, max_value=MAX_ID)
filters = st.dictionaries(
    st.sampled_from(["region", "crop", "status", "owner_id"]),
    st.one_of(st.none(), st.text(max_size=8), st.integers(1, 10**6)),
    max_size=4,
)
moments = st.datetimes(
    min_value=datetime(MIN_YEAR, 1, 2), max_value=datetime(MAX_YEAR, 12, 30), timezones=st.just(UTC)
)


@QUICK
@given(row_ids, moments, filters)
def test_cursors_round_trip(row: int, moment: datetime, bound: dict[str, Any]) -> None:
    cursor = PAGES.encode(moment.isoformat(), row, filters=bound)
    assert len(cursor) <= 200  # the Cursor query parameter's max_length
    types = (pagination.timestamp, pagination.row_id)
    assert PAGES.decode(cursor, types, filters=bound) == (moment, row)


def _signed_bytes(cursor: str) -> tuple[bytes, bytes] | None:
    body, _, tag = cursor.partition(".")
    try:
        return tuple(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in (body, tag))  # type: ignore[return-value]
    except ValueError:
        return None


@QUICK
@given(row_ids, st.data())
def test_any_tampering_is_refused(row: int, data: st.DataObject) -> None:
    cursor = PAGES.encode(row, filters=FARM_FILTERS)
    at = data.draw(st.integers(0, len(cursor) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET))
    tampered = cursor[:at] + replacement + cursor[at + 1 :]
    try:
        decoded = PAGES.decode(tampered, (pagination.row_id,), filters=FARM_FILTERS)
    except BadRequest:
        return
    # Accepted only when it is the very bytes the server signed (the character changed
    # nothing, or only base64's unused low bits of the last one).
    assert _signed_bytes(tampered) == _signed_bytes(cursor)
    assert decoded == (row,)


@QUICK
@given(st.text(max_size=200))
def test_any_made_up_string_is_a_400(text: str) -> None:
    with pytest.raises(BadRequest, match="not valid"):
        PAGES.decode(text, (pagination.row_id,), filters=FARM_FILTERS)


def test_another_servers_cursor_is_refused() -> None:
    theirs = pagination.Pages(
        Settings(env="test", secret_key="another-secret").signing_key("cursor")
    )
    with pytest.raises(BadRequest, match="not valid"):
        PAGES.decode(theirs.encode(5, filters=FARM_FILTERS), (pagination.row_id,), FARM_FILTERS)


offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@QUICK
@given(st.datetimes(timezones=st.one_of(st.none(), offsets)))
def test_any_datetime_is_bounded_utc_or_refused(moment: datetime) -> None:
    """Any datetime Python can hold, with any offset (or none): a UTC moment within the
    bounds, or a validation error; never an OverflowError."""
    try:
        parsed = MOMENT.validate_python(moment)
    except ValidationError as exc:
        assert "between the years" in str(exc)
        return
    assert parsed.tzinfo is UTC
    assert MIN_YEAR - 1 <= parsed.year <= MAX_YEAR + 1
    assert parsed == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


# -- over HTTP: whatever the cursor and the datetimes, a 200 or a 4xx --------------------

http_datetimes = st.datetimes(timezones=st.one_of(st.none(), offsets)).map(
    lambda moment: quote(moment.isoformat())
)
cursors = st.one_of(
    st.text(alphabet=ALPHABET, max_size=120),
    st.builds(lambda row: PAGES.encode(row, filters=FARM_FILTERS), st.integers(0, MAX_ID)),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(since=http_datetimes, until=st.one_of(st.none(), http_datetimes), cursor=cursors)
async def test_no_cursor_or_datetime_gives_a_server_error(
    client: httpx.AsyncClient, actors: dict[Role, Actor], since: str, until: str | None, cursor: str
) -> None:
    admin = actors[Role.admin].headers  # read-only requests: one app serves every example
    query = f"since={since}" + (f"&until={until}" if until else "")
    for url in (
        f"/v1/transactions?{query}&cursor={quote(cursor)}",
        f"/v1/farms?cursor={quote(cursor)}",
        f"/v1/notifications?cursor={quote(cursor)}",
    ):
        answer = await client.get(url, headers=admin)
        assert answer.status_code < 500, (url, answer.text)  # 200, 400, 422 (or a 429)
        if answer.status_code != 200:
            assert answer.json()["error"]["request_id"]
