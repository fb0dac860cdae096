"""Handing sealed anchors to the anchor sink: in this process on the embedded default, or
through the ``blockchain_transactions`` queue when PAMTALK_CELERY_BROKER_URL is set (a
worker submits each and records its receipt: pamtalk.ledger.tasks).

At least once, never lost: an anchor is sealed and committed before it is handed over, and
it counts as submitted only once its receipt is recorded, by whoever gave it to the sink.
Until then every settle (each API worker's periodic tick, ``pamtalk ledger anchor``) hands
it over again, so a broker that was down, or a message lost with it, delays an anchor but
never drops it; a worker does not submit an anchor that already has a receipt.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import LedgerAnchor
from pamtalk.ledger import anchors
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

SUBMIT_TASK = "pamtalk.ledger.submit_anchor"  # routed to blockchain_transactions


async def submit(session: AsyncSession, settings: Settings) -> int:
    """Hand every anchor without a receipt over; returns how many. With a broker that
    refuses them this logs and returns 0: they stay pending for the next settle."""
    if settings.celery_broker_url is None:
        return await anchors.submit_pending(session)
    from pamtalk import queues  # Celery only where a broker is used

    pending = list(
        await session.scalars(
            select(LedgerAnchor.id).where(LedgerAnchor.receipt.is_(None)).order_by(LedgerAnchor.id)
        )
    )
    await session.commit()
    try:
        await queues.publisher(settings).send(SUBMIT_TASK, [[anchor] for anchor in pending])
    except queues.BrokerUnavailable as exc:
        log.warning("%s anchor(s) not sent (%s); the next settle sends them", len(pending), exc)
        return 0
    return len(pending)


async def settle(
    session: AsyncSession, settings: Settings, *, force: bool = False
) -> tuple[int | None, int]:
    """Seal the pending entries if due (or any, with ``force``), then hand over every anchor
    still without a receipt: the API's periodic tick and ``pamtalk ledger anchor``. Returns
    the new anchor's id and how many anchors were handed over."""
    policy = anchors.Policy.from_settings(settings)
    sealed = await anchors.seal_due(session, policy, force=force)
    return sealed, await submit(session, settings)
