"""The chain head: where the next entry goes, locked by whoever appends.

One row, ``ledger_head`` id 1. ``lock`` reads it with ``SELECT ... FOR UPDATE`` on
PostgreSQL, so concurrent appends queue behind one another until the holder commits;
SQLite needs no row lock (``pamtalk.db.session`` starts every transaction with ``BEGIN
IMMEDIATE``: one writer at a time). Taking the lock last, just before commit, keeps the
serialised part of a write short and every writer's locks in the same order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import LedgerAnchor, LedgerEntry, LedgerHead
from pamtalk.db.upsert import insert_for
from pamtalk.ledger.record import GENESIS

HEAD_ID = 1


@dataclass(frozen=True)
class Head:
    seq: int  # position of the last entry (0: empty chain)
    hash: str  # its hash, GENESIS when empty
    anchored_seq: int  # the last position covered by an anchor
    pending_since: datetime | None  # when the first entry after anchored_seq was appended

    @property
    def pending(self) -> int:
        return self.seq - self.anchored_seq

    def appended(self, digest: str, now: datetime) -> Head:
        return replace(
            self,
            seq=self.seq + 1,
            hash=digest,
            pending_since=self.pending_since if self.pending else now,
        )


async def lock(session: AsyncSession) -> Head:
    """The head, locked until the session's transaction ends. A missing row (a new database,
    or one upgraded with an empty ledger) is made from the entries and anchors there are."""
    head = await _read(session)
    if head is None:
        rebuilt = await _rebuild(session)
        await session.execute(
            insert_for(session, LedgerHead)
            .values(id=HEAD_ID, **asdict(rebuilt))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = await _read(session)
        assert head is not None
    return head


async def save(session: AsyncSession, head: Head) -> None:
    await session.execute(update(LedgerHead).where(LedgerHead.id == HEAD_ID).values(**asdict(head)))


async def _read(session: AsyncSession) -> Head | None:
    row = (
        await session.execute(
            select(
                LedgerHead.seq, LedgerHead.hash, LedgerHead.anchored_seq, LedgerHead.pending_since
            )
            .where(LedgerHead.id == HEAD_ID)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else Head(*row)


async def _rebuild(session: AsyncSession) -> Head:
    last = (
        await session.execute(
            select(LedgerEntry.seq, LedgerEntry.hash).order_by(LedgerEntry.seq.desc()).limit(1)
        )
    ).one_or_none()
    anchored = await session.scalar(select(func.max(LedgerAnchor.last))) or 0
    since = await session.scalar(
        select(LedgerEntry.created_at).where(LedgerEntry.seq == anchored + 1)
    )
    if last is None:
        return Head(0, GENESIS, 0, None)
    return Head(last.seq, last.hash, anchored, since)
