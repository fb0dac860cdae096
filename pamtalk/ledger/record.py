"""What the ledger hashes: a transaction's canonical record, and the chain's entry hash.

The canonical record of a transaction is the UTF-8 JSON object of its immutable fields::

    {"buyer_id":7,"created_at":"2026-06-01T03:04:05.123456Z","crop":"tangerine",
     "farm_id":3,"id":41,"quantity_g":12345,"region":"jeju","status":"completed",
     "total_krw":30863,"unit_price_krw":2500}

keys sorted, no whitespace, strings as UTF-8 with JSON's minimal escapes, integers in
decimal, ``created_at`` in UTC with exactly six fractional digits and a ``Z``. For these
value types (strings, integers below 2**53) this is the JSON Canonicalization Scheme of
RFC 8785.

An entry's hash is ``SHA-256(previous entry's hash || canonical record)`` over the raw
32-byte previous hash; the first entry's previous hash is 32 zero bytes. Hashes are written
as 64 lowercase hex digits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import InstrumentedAttribute

from pamtalk.db.models import Transaction

GENESIS = "0" * 64
FIELDS = (
    "buyer_id",
    "created_at",
    "crop",
    "farm_id",
    "id",
    "quantity_g",
    "region",
    "status",
    "total_krw",
    "unit_price_krw",
)


def columns() -> list[InstrumentedAttribute[Any]]:
    """The transaction columns a record is made of, for a ``select``."""
    return [getattr(Transaction, name) for name in FIELDS]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def encode(record: dict[str, Any]) -> str:
    """The canonical text of a record's fields."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def canonical(tx: Transaction) -> str:
    return canonical_values([getattr(tx, name) for name in FIELDS])


def canonical_values(values: Sequence[Any]) -> str:
    """The canonical record from a transaction's values in ``FIELDS`` order (a row selected
    with ``columns()``)."""
    record = dict(zip(FIELDS, values, strict=True))
    record["created_at"] = timestamp(record["created_at"])
    record["status"] = str(record["status"])
    return encode(record)


def entry_hash(prev_hash: str, record: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + record.encode()).hexdigest()
