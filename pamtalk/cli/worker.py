"""``pamtalk worker`` and ``pamtalk beat``: the Celery processes. A worker runs every
package's tasks (batch chunks, ledger anchors, notifications) on the queues it is given,
all four by default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pamtalk import extras, tracing
from pamtalk.cli.common import refuse
from pamtalk.queues import QUEUES
from pamtalk.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

LogLevel = Annotated[str, typer.Option(help="Celery's log level: DEBUG, INFO, WARNING, ERROR")]


def worker_app(settings: Settings) -> Celery:
    """The app of a worker or beat process: the configuration and every package's tasks."""
    from pamtalk import queues
    from pamtalk.batching import tasks as batch_tasks
    from pamtalk.ledger import tasks as ledger_tasks
    from pamtalk.notify import tasks as notify_tasks

    celery = queues.create_celery(settings)
    for package in (batch_tasks, ledger_tasks, notify_tasks):
        package.register(celery, settings)
    _trace_processes()
    return celery


def _trace_processes() -> None:
    """Traces (when OTEL_EXPORTER_OTLP_ENDPOINT asks) set up in each worker process after
    the fork, as OpenTelemetry's Celery instrumentation wants, and in beat; a worker process
    exports what it holds before it ends."""
    from celery.signals import beat_init, worker_process_init, worker_process_shutdown

    if not tracing.requested():
        return
    worker_process_init.connect(lambda **_: tracing.setup(celery=True), weak=False)
    beat_init.connect(lambda **_: tracing.setup(celery=True), weak=False)
    worker_process_shutdown.connect(lambda **_: tracing.flush(), weak=False)


def _celery_app(kind: str, loglevel: str) -> tuple[Celery, list[str]]:
    """The Celery app built from this process's settings, and the argv to start ``kind``."""
    settings = Settings()
    if settings.celery_broker_url is None:
        typer.echo("set PAMTALK_CELERY_BROKER_URL (amqp://... or redis://...) first", err=True)
        raise typer.Exit(2)
    try:
        extras.require("batch", f"pamtalk {kind}")
        if tracing.requested():
            extras.require("tracing", "OTEL_EXPORTER_OTLP_ENDPOINT (traces)")
    except extras.MissingExtra as exc:
        refuse(exc, 2)
    return worker_app(settings), [kind, "--loglevel", loglevel]


def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    queues: Annotated[str, typer.Option(help="comma-separated")] = ",".join(QUEUES),
    loglevel: LogLevel = "INFO",
    hostname: Annotated[
        str | None,
        typer.Option(
            help="the node's name, default celery@<host>: workers sharing a host and a broker "
            "need different ones (e.g. batch2@%h), else the second fails to start"
        ),
    ] = None,
) -> None:
    """A Celery worker: batch chunks (prediction_requests, analytics_data), ledger anchors
    (blockchain_transactions) and notifications (notification_events)."""
    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {sorted(unknown)}; known: {', '.join(QUEUES)}")
    celery, argv = _celery_app("worker", loglevel)
    named = ["--hostname", hostname] if hostname else []
    celery.worker_main([*argv, "-Q", queues, "--concurrency", str(concurrency), *named])


def beat(loglevel: LogLevel = "INFO") -> None:
    """The Celery beat scheduler: nightly scoring at 02:00 Asia/Seoul."""
    celery, argv = _celery_app("beat", loglevel)
    schedule = Path("var/celerybeat-schedule")
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery.start([*argv, "--schedule", str(schedule)])
