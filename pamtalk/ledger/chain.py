"""Appending to the hash chain: one transaction as it is written, or every transaction not
yet in the ledger in bulk (the seed, and a database upgraded from before the ledger).

Both run inside the caller's database transaction and lock the chain head (``head.lock``)
until it commits, so a transaction and its entry commit together or not at all, and
concurrent writers get consecutive positions. Call ``append`` last before commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import Base, LedgerEntry, Transaction
from pamtalk.db.types import utcnow
from pamtalk.ledger import anchors, head
from pamtalk.ledger.record import canonical, canonical_values, columns, entry_hash

BULK_ROWS = 5000


async def append(
    session: AsyncSession, tx: Transaction, policy: anchors.Policy, now: datetime | None = None
) -> int | None:
    """Ledger ``tx``; returns the id of the anchor this append sealed, if it sealed one (then
    ``handover.submit`` after commit hands it to the sink)."""
    now = now or utcnow()
    at = await head.lock(session)
    digest = entry_hash(at.hash, canonical(tx))
    await session.execute(
        insert(LedgerEntry).values(
            seq=at.seq + 1, transaction_id=tx.id, prev_hash=at.hash, hash=digest, created_at=now
        )
    )
    at = at.appended(digest, now)
    anchor_id = None
    if policy.due(at, now):
        anchor_id, at = await anchors.seal(session, at, now)
    await head.save(session, at)
    return anchor_id


async def append_unledgered(
    session: AsyncSession, policy: anchors.Policy, now: datetime | None = None
) -> int:
    """Ledger every transaction that has no entry, in id order, and seal an anchor per
    ``policy.every`` entries; the caller commits. Returns how many were appended."""
    now = now or utcnow()
    at = await head.lock(session)
    rows = await session.execute(
        select(*columns())
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == Transaction.id)
        .where(LedgerEntry.seq.is_(None))
        .order_by(Transaction.id)
    )
    pending = list(
        await session.scalars(
            select(LedgerEntry.hash)
            .where(LedgerEntry.seq > at.anchored_seq)
            .order_by(LedgerEntry.seq)
        )
    )
    entries = []
    for tx in rows:
        digest = entry_hash(at.hash, canonical_values(tx))
        entries.append(
            {
                "seq": at.seq + 1,
                "transaction_id": tx.id,
                "prev_hash": at.hash,
                "hash": digest,
                "created_at": now,
            }
        )
        at = at.appended(digest, now)
    table = Base.metadata.tables[LedgerEntry.__tablename__]  # Core: the ORM bulk path is slower
    for start in range(0, len(entries), BULK_ROWS):
        await session.execute(insert(table), entries[start : start + BULK_ROWS])
    pending += [entry["hash"] for entry in entries]
    sealed = anchors.sealed_rows(at.anchored_seq + 1, pending, policy.every, now)
    await anchors.insert_anchors(session, sealed)
    if sealed:
        last = sealed[-1]["last"]
        at = replace(at, anchored_seq=last, pending_since=now if at.seq > last else None)
    await head.save(session, at)
    return len(entries)
