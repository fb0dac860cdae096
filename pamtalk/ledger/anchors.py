"""Anchoring: a Merkle root over the entries since the last anchor, sealed in the database
and handed to an anchor sink.

When: every ``PAMTALK_LEDGER_ANCHOR_EVERY`` entries (checked by each append) or once the
oldest unanchored entry is ``PAMTALK_LEDGER_ANCHOR_MINUTES`` old (checked by each append,
by each API worker every quarter of that period, by a proof request for an unanchored
entry, and by ``pamtalk ledger anchor``). Sealing happens under the chain head lock (inside
the appending transaction when an append seals), so anchors tile the chain without gaps or
overlaps. Submitting to the sink happens after commit (:mod:`handover`: here with
``submit_pending``, or through the ``blockchain_transactions`` queue to a worker that calls
``submit_one``): nothing slow runs while the head is locked, and an anchor whose submission
failed is handed over again by the next settle.

The sink is an ``Anchor``. ``LocalAnchor``, the default, keeps the receipt in the anchors
table only. Adapter point: to timestamp roots with an RFC 3161 time-stamping authority,
implement ``submit`` to send a TimeStampReq (RFC 3161 section 2.4.1) whose messageImprint
is SHA-256 over the 32-byte root, and return ``{"sink": "rfc3161", "token": <base64
TimeStampToken>}``; to anchor on a public chain, write the root into a transaction (for
instance an OP_RETURN output or a contract call) and return its transaction id. Then
return it from ``sink()`` (the one place the API, ``pamtalk ledger anchor`` and the
``blockchain_transactions`` workers take their sink from; ``submit`` runs in a worker
thread and may block, and with a broker it runs in the Celery worker, retried with
backoff), and add a check of its receipts to ``RECEIPT_CHECKS`` (verify and verify-proof
refuse receipts they cannot check). Receipts are JSON objects with
at least ``"sink"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Update, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import Base, LedgerAnchor, LedgerEntry
from pamtalk.db.types import utcnow
from pamtalk.ledger import head, merkle
from pamtalk.settings import Settings

Receipt = dict[str, Any]
COMMIT_EVERY = 50


class Anchor(Protocol):
    """Where anchors go: a sink that takes a Merkle root over entries ``first..last``."""

    name: str

    def submit(self, root: bytes, first: int, last: int) -> Receipt:
        """Publish the root; return a receipt (JSON-able, with ``"sink"``). May block: it
        runs in a worker thread."""
        ...


class LocalAnchor:
    """The default sink: the receipt restates what was anchored and is kept in the
    database. It proves nothing beyond the database itself; the adapters above do."""

    name = "local"

    def submit(self, root: bytes, first: int, last: int) -> Receipt:
        return local_receipt(root.hex(), first, last)


def sink() -> Anchor:
    """The sink anchors are submitted to, in this process or in a worker: the adapter point."""
    return LocalAnchor()


def local_receipt(root: str, first: int, last: int) -> Receipt:
    return {"sink": LocalAnchor.name, "root": root, "first": first, "last": last}


def _local_problem(receipt: Receipt, root: str, first: int, last: int) -> str | None:
    if receipt != local_receipt(root, first, last):
        return "the local receipt does not restate the anchor"
    return None


# How each sink's receipts are checked: an adapter adds its own (an RFC 3161 one checks the
# token's signature and that its messageImprint is SHA-256 of the root).
RECEIPT_CHECKS: dict[str, Callable[[Receipt, str, int, int], str | None]] = {
    LocalAnchor.name: _local_problem
}


def receipt_problem(receipt: Any, root: str, first: int, last: int) -> str | None:
    """What is wrong with an anchor's receipt: it must be null (not submitted yet) or an
    object naming a sink whose check (``RECEIPT_CHECKS``) it passes."""
    if receipt is None:
        return None
    if not isinstance(receipt, dict) or not isinstance(receipt.get("sink"), str):
        return "the receipt must be null or an object naming its sink"
    check = RECEIPT_CHECKS.get(receipt["sink"])
    if check is None:
        return f"no check is installed for receipts of sink {receipt['sink']!r}"
    return check(receipt, root, first, last)


@dataclass(frozen=True)
class Policy:
    every: int = 100
    minutes: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.ledger_anchor_every, settings.ledger_anchor_minutes)

    def due(self, at: head.Head, now: datetime) -> bool:
        if at.pending >= self.every:
            return True
        overdue = at.pending_since is not None and now - at.pending_since >= self.max_age
        return at.pending > 0 and overdue

    @property
    def max_age(self) -> timedelta:
        return timedelta(minutes=self.minutes)


async def seal(session: AsyncSession, at: head.Head, now: datetime) -> tuple[int, head.Head]:
    """Seal the pending entries of a locked head into an anchor; returns its id and the head
    to save."""
    hashes = list(
        await session.scalars(
            select(LedgerEntry.hash)
            .where(LedgerEntry.seq > at.anchored_seq, LedgerEntry.seq <= at.seq)
            .order_by(LedgerEntry.seq)
        )
    )
    [anchor_id] = await insert_anchors(session, [_sealed(at.anchored_seq + 1, hashes, now)])
    return anchor_id, replace(at, anchored_seq=at.seq, pending_since=None)


async def seal_due(
    session: AsyncSession, policy: Policy, *, force: bool = False, now: datetime | None = None
) -> int | None:
    """Seal the pending entries if the policy says so (or ``force`` and there are any);
    returns the new anchor's id. Commits when it sealed."""
    now = now or utcnow()
    at = await head.lock(session)
    if not at.pending or not (force or policy.due(at, now)):
        await session.commit()  # nothing written: ends the lock (rollback would expire)
        return None
    anchor_id, at = await seal(session, at, now)
    await head.save(session, at)
    await session.commit()
    return anchor_id


def sealed_rows(first: int, hashes: Sequence[str], every: int, now: datetime) -> list[Receipt]:
    """Anchor rows for consecutive entries from ``first``, one per ``every`` (the bulk path,
    which has the hashes at hand); a short tail is left pending."""
    whole = len(hashes) - len(hashes) % every
    return [
        _sealed(first + start, hashes[start : start + every], now)
        for start in range(0, whole, every)
    ]


async def insert_anchors(session: AsyncSession, rows: list[Receipt]) -> list[int]:
    if not rows:
        return []
    return list(await session.scalars(insert(LedgerAnchor).returning(LedgerAnchor.id), rows))


def _sealed(first: int, hashes: Sequence[str], now: datetime) -> Receipt:
    digest = merkle.root([bytes.fromhex(h) for h in hashes]).hex()
    return {"first": first, "last": first + len(hashes) - 1, "root": digest, "sealed_at": now}


def _store_receipt() -> Update:
    """Keep a receipt unless one is there: one kept by a concurrent submitter stays."""
    table = Base.metadata.tables[LedgerAnchor.__tablename__]
    return (
        update(table)
        .where(table.c.id == bindparam("anchor_id"), table.c.receipt.is_(None))
        .values(sink=bindparam("sink_name"), receipt=bindparam("got"), submitted_at=bindparam("at"))
    )


async def submit_pending(session: AsyncSession, to: Anchor | None = None) -> int:
    """Hand every anchor without a receipt to the sink, oldest first; returns how many were
    submitted. Receipts are committed every ``COMMIT_EVERY`` (a crash re-submits at most
    that many)."""
    to = to or sink()
    pending = (
        await session.execute(
            select(LedgerAnchor.id, LedgerAnchor.root, LedgerAnchor.first, LedgerAnchor.last)
            .where(LedgerAnchor.receipt.is_(None))
            .order_by(LedgerAnchor.id)
        )
    ).all()
    await session.commit()  # no transaction (nor SQLite's write lock) held while sending
    for start in range(0, len(pending), COMMIT_EVERY):
        receipts = [
            {
                "anchor_id": anchor_id,
                "sink_name": to.name,
                "got": await asyncio.to_thread(to.submit, bytes.fromhex(root), first, last),
                "at": utcnow(),
            }
            for anchor_id, root, first, last in pending[start : start + COMMIT_EVERY]
        ]
        await session.execute(_store_receipt(), receipts)
        await session.commit()
    return len(pending)


async def submit_one(session: AsyncSession, anchor_id: int, to: Anchor | None = None) -> bool:
    """Hand one anchor to the sink unless it has a receipt (a worker's task, which may run
    more than once); whether it was submitted now."""
    to = to or sink()
    row = (
        await session.execute(
            select(LedgerAnchor.root, LedgerAnchor.first, LedgerAnchor.last).where(
                LedgerAnchor.id == anchor_id, LedgerAnchor.receipt.is_(None)
            )
        )
    ).one_or_none()
    await session.commit()
    if row is None:  # already submitted (or no such anchor)
        return False
    got = await asyncio.to_thread(to.submit, bytes.fromhex(row.root), row.first, row.last)
    values = {"anchor_id": anchor_id, "sink_name": to.name, "got": got, "at": utcnow()}
    await session.execute(_store_receipt(), [values])
    await session.commit()
    return True
