"""The notification tasks on the ``notification_events`` queue (``pamtalk worker``; sent by
the relay, pamtalk.notify.relay):

- ``pamtalk.notify.event(event_id)``: fan the event out to notifications and deliveries,
  then send its deliveries;
- ``pamtalk.notify.deliver_due()``: send every delivery that is due (retries).

At least once, never lost: a message is acknowledged only after its work is committed (late
acknowledgement), so a worker killed mid-delivery gives it back to the broker, and the
worker that gets it again takes over the event's deliveries at once (their leases were the
dead worker's) and sends them with the same event id. Fan-out and delivery records are
idempotent, so running a task twice doubles nothing but, at worst, a webhook request.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery, Task
from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.db.session import SessionFactory, create_engine, create_session_factory
from pamtalk.notify import delivery, relay
from pamtalk.queues import ProcessLoop
from pamtalk.settings import Settings

MAX_COUNTDOWN_S = 60


@dataclass
class Notifier:
    """What a worker process sends with: its database and its HTTP client."""

    engine: AsyncEngine
    sessions: SessionFactory
    sender: delivery.Sender

    @classmethod
    def make(cls, settings: Settings) -> Notifier:
        engine = create_engine(settings)
        return cls(engine, create_session_factory(engine), delivery.Sender(settings))

    async def close(self) -> None:
        await self.sender.client.aclose()
        await self.engine.dispose()


def register(celery: Celery, settings: Settings) -> None:
    """Add the notification tasks to ``celery``."""
    process = ProcessLoop(lambda: Notifier.make(settings), Notifier.close)

    # Retried until it succeeds: the relay has marked the event published, so this message
    # is the only one that will fan it out.
    @celery.task(name=relay.EVENT_TASK, bind=True, max_retries=None, shared=False)
    def event(self: Task, event_id: str) -> int:
        # Given back by the broker: the worker that had it died, holding the leases.
        take_over = bool((self.request.delivery_info or {}).get("redelivered"))
        only = delivery.Only(event_id=event_id, take_over=take_over)

        async def publish(notifier: Notifier) -> int:
            if not await relay.fan_out_event(notifier.sessions, event_id):
                return 0
            return await delivery.deliver_due(notifier.sessions, notifier.sender, only=only)

        try:
            return process.run(publish)
        except Exception as exc:  # a database hiccup: again, backing off to once a minute
            countdown = min(2**self.request.retries, MAX_COUNTDOWN_S)
            raise self.retry(exc=exc, countdown=countdown) from exc

    # Not retried: the relay sends another sweep while deliveries are due.
    @celery.task(name=relay.SWEEP_TASK, shared=False)
    def deliver_due() -> int:
        async def sweep(notifier: Notifier) -> int:
            return await delivery.deliver_due(notifier.sessions, notifier.sender)

        return process.run(sweep)
