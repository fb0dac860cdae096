"""A chunk's trace across processes: sent from here with the Celery instrumentation on, run by
a real `pamtalk worker` whose traces OTEL_EXPORTER_OTLP_ENDPOINT sends to a receiver this test
runs. The worker's spans continue the sender's trace: the task's run -> the chunk -> its queue
wait -> the inference."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pamtalk import tracing
from pamtalk.batching.context import BatchContext
from pamtalk.db.models import JobStatus
from tests import services
from tests.batching.conftest import (
    BROKERS,
    Broker,
    Database,
    Worker,
    Workers,
    batch_settings,
    dispatch,
    wait_for_job,
)
from tests.otlp import Receiver, receiving

pytestmark = pytest.mark.services

RUN_DATE = date(2026, 11, 24)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """RabbitMQ only: what is checked here does not depend on the broker."""
    found = Broker("rabbitmq", BROKERS["rabbitmq"])
    services.need(found.url, found.port, "rabbitmq")
    found.purge()
    yield found
    found.purge()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def sent() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process (the sender), Celery's instrumentation included."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.start(provider, celery=True)
    yield exporter
    tracing.stop()
    provider.shutdown()


async def test_a_chunk_run_by_a_worker_continues_the_senders_trace(
    database: Database,
    registry_uri: str,
    broker: Broker,
    workers: Workers,
    receiver: Receiver,
    sent: InMemorySpanExporter,
) -> None:
    env = workers.env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="pamtalk-worker",
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: export soon after each span
    )
    worker = Worker(env, workers.folder, "traced", concurrency=1)
    workers.started.append(worker)
    await worker.ready()

    ctx = BatchContext(batch_settings(database, registry_uri))
    try:
        job = await ctx.plan_single("demand", "cabbage:jeju", RUN_DATE)
        chunks = await ctx.chunks(job.id)
    finally:
        await ctx.close()
    with tracing.span("dispatch") as dispatching:
        dispatch(broker, job.id, chunks)
    finished = await wait_for_job(database, job.id, workers)
    assert finished.status == JobStatus.completed, finished.error

    # Here: the publish span, under ours.
    (publish,) = [s for s in sent.get_finished_spans() if s.name.startswith("apply_async/")]
    assert publish.parent is not None
    assert publish.parent.span_id == dispatching.get_span_context().span_id
    # There: the task's run (it ends last), in the same trace, then our spans under it.
    run = receiver.wait_for("run/pamtalk.score_chunk")
    by_id = {s.span_id: s for s in receiver.spans()}
    assert run.service == "pamtalk-worker"
    assert run.trace_id.hex() == format(dispatching.get_span_context().trace_id, "032x")
    (chunk,) = [s for s in by_id.values() if s.name == "batch.chunk"]
    assert chunk.parent_span_id == run.span_id and chunk.trace_id == run.trace_id
    assert chunk.attributes["batch.job_id"] == job.id
    assert (chunk.attributes["batch.kind"], chunk.attributes["batch.rows_written"]) == (
        "demand",
        28,
    )
    (inference,) = [s for s in by_id.values() if s.name == "inference"]
    wait = by_id[inference.parent_span_id]
    assert wait.name == "batcher.queue_wait" and wait.parent_span_id == chunk.span_id
    assert inference.attributes["model.name"] == "pamtalk-demand"
    assert inference.attributes["inference.rows"] == 1
