"""A transaction's inclusion proof: what it holds, how it is built from the database, and
how it is checked offline (no database, nothing but this module and hashlib).

A proof is one JSON object (``FORMAT``)::

    {"format": "pamtalk-ledger-proof/1",
     "transaction_id": 41,
     "record": "<the canonical record, pamtalk.ledger.record>",
     "position": 17,                       # the entry's place in the chain, from 1
     "prev_hash": "<64 hex>", "hash": "<64 hex>",
     "anchor": {"first": 1, "last": 100, "root": "<64 hex>", "receipt": {...} | null},
     "path": ["<64 hex>", ...]}            # RFC 6962 audit path, leaf side first

and it holds when: the record is canonical and is transaction ``transaction_id``;
``hash = SHA-256(prev_hash || record)``; the audit path leads from leaf ``hash`` at index
``position - first`` of a tree of ``last - first + 1`` leaves to ``root`` (see
:mod:`pamtalk.ledger.merkle`); and the receipt is null (not submitted yet) or passes its
sink's check (a local receipt restates the root and range). Every field is bound by one of
these checks, and anything else in the object (an unknown or repeated key, upper-case hex)
is refused, so that changing any byte of a proof makes it fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import LedgerAnchor, LedgerEntry, Transaction
from pamtalk.errors import Conflict
from pamtalk.ledger import merkle
from pamtalk.ledger.anchors import receipt_problem
from pamtalk.ledger.record import FIELDS, canonical, encode, entry_hash

FORMAT = "pamtalk-ledger-proof/1"
_KEYS = {"format", "transaction_id", "record", "position", "prev_hash", "hash", "anchor", "path"}
_ANCHOR_KEYS = {"first", "last", "root", "receipt"}
_HEX = re.compile(r"[0-9a-f]{64}")


class NotLedgered(Conflict):
    code = "not_ledgered"


class NotAnchored(Conflict):
    code = "not_anchored"


class InvalidProof(ValueError):
    """The proof does not hold; the message says which check failed."""


@dataclass(frozen=True)
class Checked:
    transaction_id: int
    position: int
    root: str
    receipt: dict[str, Any] | None


async def build(session: AsyncSession, tx: Transaction) -> dict[str, Any]:
    """The proof of ``tx`` up to its anchor. NotLedgered if it has no entry; NotAnchored
    (with the entry's position) if no anchor covers it yet."""
    entry = await session.scalar(select(LedgerEntry).where(LedgerEntry.transaction_id == tx.id))
    if entry is None:
        raise NotLedgered(f"transaction {tx.id} is not in the ledger")
    anchor = await session.scalar(
        select(LedgerAnchor).where(LedgerAnchor.first <= entry.seq, LedgerAnchor.last >= entry.seq)
    )
    if anchor is None:
        raise NotAnchored(
            f"transaction {tx.id} is entry {entry.seq} of the ledger, not anchored yet",
            details={"position": entry.seq},
        )
    hashes = await session.scalars(
        select(LedgerEntry.hash)
        .where(LedgerEntry.seq >= anchor.first, LedgerEntry.seq <= anchor.last)
        .order_by(LedgerEntry.seq)
    )
    leaves = [bytes.fromhex(h) for h in hashes]
    return {
        "format": FORMAT,
        "transaction_id": tx.id,
        "record": canonical(tx),
        "position": entry.seq,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "anchor": {
            "first": anchor.first,
            "last": anchor.last,
            "root": anchor.root,
            "receipt": anchor.receipt,
        },
        "path": [h.hex() for h in merkle.path(entry.seq - anchor.first, leaves)],
    }


def check(text: str | bytes) -> Checked:
    """Check a proof document; raises InvalidProof saying why it does not hold."""
    try:
        proof = json.loads(text, object_pairs_hook=_unique)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidProof(f"not a JSON proof: {exc}") from exc
    _keys(proof, _KEYS, "the proof")
    if proof["format"] != FORMAT:
        raise InvalidProof(f"unknown format {proof['format']!r}; expected {FORMAT!r}")
    tx_id, position = _int(proof, "transaction_id"), _int(proof, "position")
    prev_hash, digest = _hex(proof, "prev_hash"), _hex(proof, "hash")
    record = _record(proof["record"], tx_id)
    if entry_hash(prev_hash, record) != digest:
        raise InvalidProof("hash is not SHA-256(prev_hash || record)")

    anchor = proof["anchor"]
    _keys(anchor, _ANCHOR_KEYS, "anchor")
    first, last, root = _int(anchor, "first"), _int(anchor, "last"), _hex(anchor, "root")
    if not first <= position <= last:
        raise InvalidProof(f"position {position} is outside the anchor's {first}..{last}")
    if not isinstance(proof["path"], list):
        raise InvalidProof("path must be a list of hashes")
    path = [bytes.fromhex(_hex({"path": h}, "path")) for h in proof["path"]]
    try:
        reached = merkle.root_from_path(
            position - first, last - first + 1, bytes.fromhex(digest), path
        )
    except ValueError as exc:
        raise InvalidProof(f"the audit path does not fit the anchor: {exc}") from exc
    if reached.hex() != root:
        raise InvalidProof("the audit path does not lead to the anchor's root")
    receipt = anchor["receipt"]
    if problem := receipt_problem(receipt, root, first, last):
        raise InvalidProof(problem)
    return Checked(tx_id, position, root, receipt)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidProof(f"a key appears twice: {sorted(keys)}")
    return dict(pairs)


def _keys(value: Any, expected: set[str], what: str) -> None:
    if not isinstance(value, dict) or set(value) != expected:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise InvalidProof(f"{what} must have exactly the keys {sorted(expected)}; got {got}")


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int or value < 1:
        raise InvalidProof(f"{key} must be a positive integer")
    return value


def _hex(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise InvalidProof(f"{key} must be 64 lower-case hex digits")
    return value


def _record(record: Any, tx_id: int) -> str:
    if not isinstance(record, str):
        raise InvalidProof("record must be a string")
    try:
        fields = json.loads(record, object_pairs_hook=_unique)
    except ValueError as exc:
        raise InvalidProof(f"record is not JSON: {exc}") from exc
    _keys(fields, set(FIELDS), "the record")
    if encode(fields) != record:
        raise InvalidProof("record is not in canonical form")
    if type(fields["id"]) is not int or fields["id"] != tx_id:
        raise InvalidProof(f"the record is transaction {fields['id']}, not {tx_id}")
    return record
