"""Recompute the ledger from the database and name the first thing that does not hold.

Walks the entries in position order, recomputing each hash from the transaction row as it
is now: an altered transaction, a deleted, inserted or reordered entry, or an entry whose
transaction is gone each break the walk at a position. Then the chain head, every anchor
(contiguous ranges from 1, each root recomputed from its entries, each local receipt
restating its anchor), and transactions that are in no entry at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import LedgerAnchor, LedgerEntry, LedgerHead, Transaction
from pamtalk.ledger import merkle
from pamtalk.ledger.anchors import receipt_problem
from pamtalk.ledger.head import HEAD_ID
from pamtalk.ledger.record import FIELDS, GENESIS, canonical_values, columns, entry_hash

BATCH = 5000


@dataclass(frozen=True)
class Report:
    start: int  # the first position checked
    entries: int  # how many entries were checked
    anchors: int  # how many anchors were checked
    problem: str | None = None  # the first one found, naming its entry

    @property
    def ok(self) -> bool:
        return self.problem is None


async def verify(session: AsyncSession, start: int = 1) -> Report:
    """Check the chain from position ``start`` (from the first entry of the anchor holding
    ``start``, so that its root can be recomputed; entry ``start - 1``'s hash is trusted).
    Call it on a fresh session: on PostgreSQL it reads one snapshot (REPEATABLE READ), so
    entries appended meanwhile do not look like a head past the chain's end. SQLite's one
    writer waits until it is done."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    anchors = list(
        await session.scalars(
            select(LedgerAnchor).where(LedgerAnchor.last >= start).order_by(LedgerAnchor.first)
        )
    )
    if anchors and anchors[0].first < start:
        start = anchors[0].first
    walk = _Walk(start)
    prev = GENESIS
    if start > 1:
        found = await session.scalar(select(LedgerEntry.hash).where(LedgerEntry.seq == start - 1))
        if found is None:
            return walk.report(len(anchors), f"entry {start - 1} is missing")
        prev = found
    problem = await walk.chain(session, prev)
    problem = problem or await _head(session, walk)
    problem = problem or _anchors(anchors, walk)
    problem = problem or await _unledgered(session)
    return walk.report(len(anchors), problem)


class _Walk:
    def __init__(self, start: int) -> None:
        self.start = start
        self.hashes: list[str] = []  # of entries start.. in order, as stored

    @property
    def last(self) -> int:
        return self.start + len(self.hashes) - 1

    def report(self, anchors: int, problem: str | None) -> Report:
        return Report(self.start, len(self.hashes), anchors, problem)

    def _step(self, row: Row[Any], prev: str) -> str | None:
        expected = self.last + 1
        if row.seq != expected:
            return f"entry {expected} is missing (the next entry is {row.seq})"
        what = f"entry {row.seq} (transaction {row.entry_tx})"
        if row.prev_hash != prev:
            return f"{what} does not link to entry {row.seq - 1}: entries inserted or reordered"
        if row.id is None:
            return f"{what}: the transaction no longer exists"
        if entry_hash(prev, canonical_values(row[: len(FIELDS)])) != row.hash:
            return f"{what}: its hash does not match the transaction as it is now"
        self.hashes.append(row.hash)
        return None

    async def chain(self, session: AsyncSession, prev: str) -> str | None:
        query = (
            select(*columns(), LedgerEntry.seq, LedgerEntry.prev_hash, LedgerEntry.hash)
            .add_columns(LedgerEntry.transaction_id.label("entry_tx"))
            .outerjoin(Transaction, Transaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.seq >= self.start)
            .order_by(LedgerEntry.seq)
        )
        result = await session.stream(query.execution_options(yield_per=BATCH))
        async for rows in result.partitions():
            for row in rows:
                if problem := self._step(row, prev):
                    return problem
                prev = row.hash
        return None


async def _head(session: AsyncSession, walk: _Walk) -> str | None:
    row = (
        await session.execute(
            select(LedgerHead.seq, LedgerHead.hash, LedgerHead.anchored_seq).where(
                LedgerHead.id == HEAD_ID
            )
        )
    ).one_or_none()
    if row is None:
        return None if not walk.hashes else "the chain head is missing"
    if row.seq > walk.last:
        return f"entry {walk.last + 1} is missing: the chain head is at entry {row.seq}"
    if row.seq < walk.last:
        return f"entry {row.seq + 1} is past the chain head (entry {row.seq}): entries inserted"
    if walk.hashes and row.hash != walk.hashes[-1]:
        return f"entry {row.seq}: its hash is not the chain head's"
    anchored = await session.scalar(select(func.coalesce(func.max(LedgerAnchor.last), 0)))
    if row.anchored_seq != anchored:
        return f"the chain head has entries to {row.anchored_seq} anchored, the anchors {anchored}"
    return None


def _anchors(anchors: list[LedgerAnchor], walk: _Walk) -> str | None:
    expected = walk.start
    for anchor in anchors:
        what = f"anchor {anchor.id} (entries {anchor.first}..{anchor.last})"
        if anchor.first != expected or anchor.last < anchor.first:
            return f"{what} does not follow on from entry {expected - 1}"
        if anchor.last > walk.last:
            return f"{what} covers entries past the last one, {walk.last}"
        leaves = walk.hashes[anchor.first - walk.start : anchor.last - walk.start + 1]
        if merkle.root([bytes.fromhex(h) for h in leaves]).hex() != anchor.root:
            return f"{what}: its root does not match its entries"
        if problem := receipt_problem(anchor.receipt, anchor.root, anchor.first, anchor.last):
            return f"{what}: {problem}"
        expected = anchor.last + 1
    return None


async def _unledgered(session: AsyncSession) -> str | None:
    missing = await session.scalar(
        select(Transaction.id)
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == Transaction.id)
        .where(LedgerEntry.seq.is_(None))
        .order_by(Transaction.id)
        .limit(1)
    )
    return None if missing is None else f"transaction {missing} is in no ledger entry: inserted"
