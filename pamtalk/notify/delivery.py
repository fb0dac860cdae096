"""Webhook delivery: due deliveries are claimed (a lease, so two workers never send the same
one at once and a killed sender's claim runs out), sent signed, and recorded. A failure is
retried with exponential backoff for 24 h, then the delivery is dead-lettered.

At least once: a delivery is marked delivered only after its 2xx, so a sender killed between
the send and the record sends it again, with the same body and event id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType

import httpx
from sqlalchemy import select, update

from pamtalk.db.models import DeliveryStatus, Webhook, WebhookDelivery
from pamtalk.db.session import SessionFactory
from pamtalk.db.types import utcnow
from pamtalk.errors import InvalidInput
from pamtalk.notify import signing, webhooks
from pamtalk.secretbox import UnreadableSecret
from pamtalk.settings import Settings

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
RETRY_FOR = timedelta(hours=24)
LEASE = timedelta(minutes=2)  # longer than a send can take (TIMEOUT_S)
TIMEOUT_S = 10.0
BATCH = 50
CONCURRENCY = 16


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 30 s, 1 min, 2 min, ... at most 1 h."""
    return min(FIRST_RETRY * (1 << min(attempts - 1, 16)), MAX_RETRY)


class Sender:
    """Sends one signed delivery over a shared HTTP client; refuses private addresses at
    send time too (a name can resolve elsewhere since the webhook was registered)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.allow_private = settings.webhook_allow_private
        self.secrets = webhooks.secret_box(settings)
        self.client = httpx.AsyncClient(
            timeout=TIMEOUT_S, follow_redirects=False, transport=transport
        )

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.aclose()

    async def send(self, hook: Webhook, delivery: WebhookDelivery) -> int:
        """The receiver's status code; raises on a refused address, a secret it cannot
        decrypt (UnreadableSecret) or a network error."""
        url = await webhooks.check_url(hook.url, self.allow_private)
        secret = self.secrets.open(hook.secret_encrypted)
        body = delivery.body.encode()
        response = await self.client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "pamtalk-webhooks/1",
                signing.HEADER: signing.signature(secret, int(time.time()), body),
                signing.EVENT_ID_HEADER: delivery.event_id,
                signing.EVENT_TYPE_HEADER: delivery.event_type,
            },
        )
        return response.status_code


Claim = tuple[WebhookDelivery, Webhook, datetime]  # the delivery, its webhook, lease end


@dataclass(frozen=True)
class Only:
    """Which deliveries to claim: every due one, or one event's (a worker's task for that
    event). ``take_over``: the event's pending ones even if leased or waiting for a retry,
    for a task the broker gave back because its worker died holding their leases."""

    event_id: str | None = None
    take_over: bool = False


EVERY_DUE = Only()


async def _claim(sessions: SessionFactory, now: datetime, only: Only) -> list[Claim]:
    claimed: list[Claim] = []
    query = (
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == DeliveryStatus.pending)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(BATCH)
    )
    if only.event_id is not None:
        query = query.where(WebhookDelivery.event_id == only.event_id)
    if not only.take_over:
        query = query.where(WebhookDelivery.next_attempt_at <= now)
    async with sessions.write() as session:
        due = (await session.execute(query)).all()
        for delivery, hook in due:
            # Conditional on the time it was due: of two claimants, one wins.
            won = await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.next_attempt_at == delivery.next_attempt_at,
                )
                .values(next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append((delivery, hook, now + LEASE))
        await session.commit()
    return claimed


async def _record(
    sessions: SessionFactory,
    claim: Claim,
    now: datetime,
    status: int | None,
    error: str | None,
) -> None:
    delivery = claim[0]
    attempts = delivery.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "last_status": status}
    if status is not None and 200 <= status < 300:
        values |= {"status": DeliveryStatus.delivered, "finished_at": now, "last_error": None}
    else:
        values["last_error"] = (error or f"receiver answered {status}")[:500]
        deadline = delivery.created_at + RETRY_FOR
        if now >= deadline:
            values |= {"status": DeliveryStatus.dead, "finished_at": now}
        else:
            values["next_attempt_at"] = min(now + backoff(attempts), deadline)
    await _update(sessions, claim, values)


async def _update(sessions: SessionFactory, claim: Claim, values: dict[str, object]) -> None:
    """Record an attempt, if the claim still holds: a sender slower than its lease has lost
    the delivery to another, whose record counts (the receiver may get it twice, same id)."""
    delivery, _, until = claim
    async with sessions.write() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at == until,
            )
            .values(**values)
        )
        await session.commit()


async def deliver_due(
    sessions: SessionFactory,
    sender: Sender,
    now: Callable[[], datetime] = utcnow,
    only: Only = EVERY_DUE,
) -> int:
    """Send every delivery that is due (of ``only``), a batch at a time, up to CONCURRENCY at
    once (a batch takes about one TIMEOUT_S at worst, well within its LEASE); how many were
    attempted. A take-over claims only in its first round: what it sent and failed waits
    for its backoff like any other."""
    attempted = 0
    limit = asyncio.Semaphore(CONCURRENCY)

    async def attempt(claim: Claim) -> None:
        nonlocal attempted
        delivery, hook, _ = claim
        if hook.deleted_at is not None:
            gone = {"status": DeliveryStatus.dead, "finished_at": now()}
            await _update(sessions, claim, gone | {"last_error": "webhook deleted"})
            return
        status, error = None, None
        async with limit:
            try:
                status = await sender.send(hook, delivery)
            except (httpx.HTTPError, InvalidInput, UnreadableSecret, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
        await _record(sessions, claim, now(), status, error)
        attempted += 1

    while claimed := await _claim(sessions, now(), only):
        only = replace(only, take_over=False)
        async with asyncio.TaskGroup() as group:
            for claim in claimed:
                group.create_task(attempt(claim))
    return attempted
