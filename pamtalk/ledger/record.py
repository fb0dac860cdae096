"""What the ledger hashes: a transaction's canonical record, and the chain's entry hash.

The canonical record of a transaction is the UTF-8 JSON object of its immutable fields::

    {"buyer_id":7,"created_at":"2026-06-01T03:04:05.123456Z","crop":"tangerine",
     "farm_id":3,"id":41,"quantity_g":12345,"region":"jeju","status":"completed",
     "total_krw":30863,"unit_price_krw":2500}

keys sorted, no whitespace, integers in decimal, ``created_at`` in UTC with exactly six
fractional digits and a ``Z``. For these value types (ASCII strings, integers below 2**53)
this is the JSON Canonicalization Scheme of RFC 8785.

An entry's hash is ``SHA-256(previous entry's hash || canonical record)`` over the raw
32-byte previous hash; the first entry's previous hash is 32 zero bytes. Hashes are written
as 64 lowercase hex digits.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol

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


class TransactionLike(Protocol):
    """A transaction row: the ORM object or a result row with the same column names."""

    @property
    def id(self) -> int: ...
    @property
    def buyer_id(self) -> int: ...
    @property
    def farm_id(self) -> int: ...
    @property
    def crop(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def quantity_g(self) -> int: ...
    @property
    def unit_price_krw(self) -> int: ...
    @property
    def total_krw(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def columns() -> list[InstrumentedAttribute[Any]]:
    """The transaction columns a record is made of, for a ``select``."""
    return [getattr(Transaction, name) for name in FIELDS]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fields(tx: TransactionLike) -> dict[str, Any]:
    return {
        "buyer_id": tx.buyer_id,
        "created_at": timestamp(tx.created_at),
        "crop": tx.crop,
        "farm_id": tx.farm_id,
        "id": tx.id,
        "quantity_g": tx.quantity_g,
        "region": tx.region,
        "status": str(tx.status),
        "total_krw": tx.total_krw,
        "unit_price_krw": tx.unit_price_krw,
    }


def encode(record: dict[str, Any]) -> str:
    """The canonical text of a record's fields."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical(tx: TransactionLike) -> str:
    return encode(fields(tx))


def entry_hash(prev_hash: str, record: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + record.encode()).hexdigest()
