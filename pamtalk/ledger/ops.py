"""The ledger chores behind ``pamtalk ledger`` and ``pamtalk db seed``, each on its own
database connection."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db import manage, seed
from pamtalk.db.models import LedgerEntry
from pamtalk.ledger import anchors, chain, handover, verify
from pamtalk.settings import Settings


async def seed_database(settings: Settings, size: seed.SeedSize) -> dict[str, int]:
    """``manage.seed_database`` with the demo transactions ledgered in the same database
    transaction (in bulk), then the anchors' receipts."""
    policy = anchors.Policy.from_settings(settings)
    appended = 0

    async def ledger(session: AsyncSession) -> None:
        nonlocal appended
        appended = await chain.append_unledgered(session, policy)

    counts = await manage.seed_database(settings, size, ledger=ledger)
    await submit(settings)
    return {**counts, "ledger entries": appended}


async def backfill(settings: Settings, *, only_if_empty: bool = False) -> int:
    """Ledger the transactions that have no entry (those written before the ledger existed);
    returns how many. ``only_if_empty``: only when the ledger has no entry at all (``pamtalk
    init`` on a database from before the ledger; a gap in a started ledger is for verify to
    report, not for init to paper over)."""
    async with manage.open_session(settings) as session:
        if only_if_empty and await session.scalar(select(LedgerEntry.seq).limit(1)):
            return 0
        appended = await chain.append_unledgered(session, anchors.Policy.from_settings(settings))
        await session.commit()
    if appended:
        await submit(settings)
    return appended


async def anchor(settings: Settings, force: bool = False) -> tuple[int | None, int]:
    """``handover.settle`` on its own connection."""
    async with manage.open_session(settings) as session:
        return await handover.settle(session, settings, force=force)


async def submit(settings: Settings) -> int:
    async with manage.open_session(settings) as session:
        return await handover.submit(session, settings)


async def check(settings: Settings, start: int = 1) -> verify.Report:
    async with manage.open_session(settings) as session:
        return await verify.verify(session, start)
