"""The Celery app's configuration, shared by every package that sends or runs tasks: the
seed's queues and their routes, late acknowledgement, publisher confirms; a ``Publisher``
that sends from async code; and ``ProcessLoop``, how a task runs async code in a worker.

Built from the settings of the process that makes it, never at import. Tasks are added by
their packages (``pamtalk.batching.tasks``, ``pamtalk.ledger.tasks``,
``pamtalk.notify.tasks``); ``pamtalk worker`` runs them all (``pamtalk.cli.worker``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pamtalk import extras
from pamtalk.settings import Settings

if TYPE_CHECKING:  # Celery loads only where a broker is used
    from celery import Celery

PREDICTIONS, ANALYTICS, BLOCKCHAIN, NOTIFICATIONS = (
    "prediction_requests",  # batch chunks: demand forecasts
    "analytics_data",  # batch chunks: ESG scores
    "blockchain_transactions",  # ledger anchors to the anchor sink
    "notification_events",  # outbox events to in-app notifications and webhooks
)
QUEUES = (PREDICTIONS, ANALYTICS, BLOCKCHAIN, NOTIFICATIONS)
ROUTES = {
    "pamtalk.ledger.*": {"queue": BLOCKCHAIN},
    "pamtalk.notify.*": {"queue": NOTIFICATIONS},
}
# A sender gives up on an unreachable broker after about a second (kombu's default is to
# retry the connection for ever): the caller keeps the work and sends it again later.
_SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}

T = TypeVar("T")
R = TypeVar("R")


def create_celery(settings: Settings) -> Celery:
    with extras.needs("batch", "a Celery broker (PAMTALK_CELERY_BROKER_URL)"):
        from celery import Celery

    celery = Celery("pamtalk", broker=settings.celery_broker_url or "memory://")
    celery.conf.update(
        task_default_queue=PREDICTIONS,  # the others are made on first use
        task_routes=ROUTES,
        # Acknowledge after the work is done, and give a task back if its worker dies: every
        # task is idempotent, so running one twice is safe, losing one is not.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task running when the broker connection drops runs to its end (a chunk commits
        # whole) and, unacknowledged, is delivered again: a repeat, not a loss. Celery 6's
        # default would cancel it instead, throwing the finished work away.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(settings.celery_visibility_timeout),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry_policy=_SEND_RETRY,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # progress lives in the database, not a result backend
        timezone="Asia/Seoul",
        enable_utc=True,
    )
    return celery


def transport_options(visibility_timeout: int) -> dict[str, Any]:
    """RabbitMQ: publisher confirms (a send returns once the broker has the message).

    Redis gives back a task whose worker died without acknowledging it once it has been
    unacknowledged for ``visibility_timeout`` seconds, but only when a worker sweeps for such
    tasks: kombu sweeps every ``unacked_restore_interval`` x ``unacked_restore_throttle``
    seconds (10 x 10 by default), so a short timeout would still wait up to 100 s. Sweep
    every half timeout (1 s to 60 s) instead; RabbitMQ ignores these."""
    return {
        "confirm_publish": True,
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(60, visibility_timeout // 2)),
        "unacked_restore_throttle": 1,
        **_SEND_RETRY,
    }


class BrokerUnavailable(Exception):
    """The broker did not take a message (unreachable, or it refused it)."""


class Publisher:
    """Sends tasks from async code, off the event loop, one send at a time. ``send``
    returns when the broker has the messages (RabbitMQ confirms each; Redis has stored
    it) and raises if it could not take them all: the caller keeps its work to send again."""

    def __init__(self, settings: Settings) -> None:
        from kombu.exceptions import KombuError

        self.celery = create_celery(settings)
        with self.celery.connection_for_write() as conn:  # not connected: its error types
            self._errors = (KombuError, OSError, *conn.connection_errors, *conn.channel_errors)
        self._lock = threading.Lock()

    def send_now(self, name: str, calls: Sequence[Sequence[Any]], **options: Any) -> None:
        with self._lock:
            for args in calls:
                try:
                    self.celery.send_task(name, args=list(args), **options)
                except self._errors as exc:
                    raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def send(self, name: str, calls: Sequence[Sequence[Any]], **options: Any) -> None:
        if calls:
            await asyncio.to_thread(self.send_now, name, calls, **options)

    def close(self) -> None:
        self.celery.close()


_publishers: dict[str, Publisher] = {}
_publishers_lock = threading.Lock()


def publisher(settings: Settings) -> Publisher:
    """This process's publisher to ``settings``' broker (one connection pool per broker)."""
    url = settings.celery_broker_url
    if url is None:
        raise ValueError("no broker: PAMTALK_CELERY_BROKER_URL is not set")
    with _publishers_lock:
        if url not in _publishers:
            _publishers[url] = Publisher(settings)
        return _publishers[url]


class ProcessLoop(Generic[R]):
    """How a Celery task runs async code: one event loop and one resource (an engine, a
    batch context) per worker process, made on first use, after the fork, so that no
    connection is shared between processes; closed when the process shuts down."""

    def __init__(
        self, make: Callable[[], R], close: Callable[[R], Awaitable[None]] | None = None
    ) -> None:
        self._make, self._close = make, close
        self._runner: asyncio.Runner | None = None
        self._resource: R | None = None
        from celery.signals import worker_process_shutdown

        worker_process_shutdown.connect(lambda **_: self.close(), weak=False)

    def run(self, work: Callable[[R], Awaitable[T]]) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._resource is None:
            self._resource = self._make()
        resource = self._resource
        # Runner.run takes a coroutine; wrapping the awaitable keeps work's type. It runs in
        # the caller's context, not the runner's own: the task's trace span is the parent.
        return self._runner.run(_awaited(work(resource)), context=contextvars.copy_context())

    def close(self) -> None:
        if self._runner is not None:
            if self._resource is not None and self._close is not None:
                self._runner.run(_awaited(self._close(self._resource)))
            self._runner.close()
        self._runner, self._resource = None, None


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
