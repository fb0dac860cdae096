"""Traces (pamtalk.tracing) into an in-memory exporter: the span tree of one prediction and of
one batch chunk, on the real app and both stacks; and tracing off by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from pamtalk import tracing
from pamtalk.db.models import Role
from tests.conftest import Actor, Stack, finished

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 31)


class Spans:
    """The finished spans, looked up by name and by parent."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    @property
    def all(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all if s.name == name]

    def one(self, name: str, **attributes: Any) -> ReadableSpan:
        found = [
            s
            for s in self.named(name)
            if all(s.attributes and s.attributes.get(k) == v for k, v in attributes.items())
        ]
        assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in self.all])
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.all if s.parent and s.parent.span_id == parent.context.span_id]


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None and parent.context is not None
    return (
        child.parent is not None
        and child.parent.span_id == parent.context.span_id
        and child.context.trace_id == parent.context.trace_id
    )


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.start(provider)
    yield Spans(exporter)
    tracing.stop()
    provider.shutdown()


@pytest.fixture
async def app(spans: Spans, app: FastAPI) -> AsyncIterator[FastAPI]:
    """The suite's app (tests/conftest.py), made while tracing is on."""
    yield app


def demand_body() -> dict[str, Any]:
    history = [
        {"quantity_kg": 200.0 + 30 * (day.weekday() < 5), "price_krw_per_kg": 3000.0}
        for day in (AS_OF - timedelta(days=55 - i) for i in range(56))
    ]
    return {
        "crop": "cabbage",
        "region": "jeju",
        "as_of": AS_OF.isoformat(),
        "horizon_days": 7,
        "history": history,
    }


async def test_a_prediction_is_one_trace_from_the_server_span_to_the_inference(
    spans: Spans, client: httpx.AsyncClient, actors: dict[Role, Actor], stack: Stack
) -> None:
    headers = actors[Role.buyer].headers | {"X-Request-ID": "trace-me-1"}
    answer = await client.post("/v1/predictions/demand", json=demand_body(), headers=headers)
    assert answer.status_code == 200, answer.text

    server = spans.one("POST /v1/predictions/demand", request_id="trace-me-1")
    assert server.kind == SpanKind.SERVER and server.parent is None
    assert server.attributes is not None and server.attributes["http.route"] == (
        "/v1/predictions/demand"
    )
    lookup = spans.one("cache.read_through", request_id="trace-me-1")
    assert is_child(lookup, server)
    assert lookup.attributes == {
        "cache.namespace": "predictions",
        "cache.hit": False,
        "cache.result": "miss",
        "request_id": "trace-me-1",
    }
    get, put = spans.one("cache.get", request_id="trace-me-1"), spans.one("cache.set")
    assert is_child(get, lookup) and is_child(put, lookup)
    assert get.attributes is not None and get.attributes["cache.hit"] is False
    wait = spans.one("batcher.queue_wait", request_id="trace-me-1")
    assert is_child(wait, lookup)
    assert wait.attributes is not None
    assert (wait.attributes["model.name"], wait.attributes["model.version"]) == (
        "pamtalk-demand",
        "1",
    )
    assert wait.attributes["inference.rows"] == 1 and wait.attributes["batch.size"] >= 1
    # the batch's inference carries its first request's id (here the only one)
    inference = spans.one("inference", request_id="trace-me-1")
    assert is_child(inference, wait)
    assert inference.attributes is not None
    assert inference.attributes["model.version"] == "1"
    assert inference.attributes["inference.rows"] == wait.attributes["batch.size"]
    # the queue wait ends when the batch starts: the inference runs after it
    assert wait.end_time is not None and inference.start_time is not None
    assert wait.end_time <= inference.start_time

    # The instrumentations' spans carry the request id too: SQL (the API key's lookup) and,
    # on the services stack, Redis under our cache spans.
    assert server.context is not None
    traced = [s for s in spans.all if s.context and s.context.trace_id == server.context.trace_id]
    sql = [s for s in traced if s.attributes and "db.statement" in s.attributes]
    assert sql and all(s.attributes and s.attributes["request_id"] == "trace-me-1" for s in sql)
    if stack.redis_url is not None:
        assert [s.name for s in spans.children(get)] == ["GET"]
        assert [s.name for s in spans.children(put)] == ["SET"]

    # The same request again: a hit, with no queue wait nor inference under it.
    spans.exporter.clear()
    headers["X-Request-ID"] = "trace-me-2"
    again = await client.post("/v1/predictions/demand", json=demand_body(), headers=headers)
    assert again.status_code == 200 and again.json()["cached"] is True
    hit = spans.one("cache.read_through", request_id="trace-me-2")
    assert hit.attributes is not None and hit.attributes["cache.hit"] is True
    assert spans.named("batcher.queue_wait") == [] and spans.named("inference") == []

    # A probe is not traced at all: no server span, and none of its SQL or Redis calls.
    spans.exporter.clear()
    assert (await client.get("/readyz")).status_code == 200
    assert spans.all == ()


async def test_a_batch_chunk_is_a_span_with_its_inference_under_it(
    spans: Spans, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    buyer = actors[Role.buyer].headers
    job = {"kind": "demand", "crop": "cabbage", "region": "jeju"}
    started = await client.post("/v1/jobs", json=job, headers=buyer)
    assert started.status_code == 202, started.text
    done = await finished(client, started.headers["Location"], buyer)
    assert done["status"] == "completed", done

    chunk = spans.one("batch.chunk", **{"batch.job_id": done["id"]})
    assert chunk.attributes is not None
    assert dict(chunk.attributes) == {
        "batch.job_id": done["id"],
        "batch.chunk": 0,
        "batch.kind": "demand",
        "batch.items": 1,
        "model.name": "pamtalk-demand",
        "model.version": "1",
        "batch.rows_written": 28,
    }
    (wait,) = [s for s in spans.children(chunk) if s.name == "batcher.queue_wait"]
    (inference,) = [s for s in spans.children(wait) if s.name == "inference"]
    assert inference.attributes is not None
    assert inference.attributes["model.name"] == "pamtalk-demand"
    assert inference.attributes["inference.rows"] == 1  # one series
    # the chunk's reads and writes are SQL spans under it
    assert any(s.attributes and "db.statement" in s.attributes for s in spans.children(chunk))


OFF_BY_DEFAULT = """
import json, sys
from opentelemetry import trace
from pamtalk import tracing
from pamtalk.api.app import create_app
from pamtalk.settings import Settings

app = create_app(Settings(env="test", database_url="sqlite+aiosqlite:///" + sys.argv[1]))
with tracing.span("anything") as span:
    recording = span.is_recording()
print(json.dumps({
    "on": tracing.on(),
    "provider": type(trace.get_tracer_provider()).__name__,
    "recording": recording,
    "instrumentations": sorted(m for m in sys.modules if m.startswith("opentelemetry.instr")),
    "middleware": [m.cls.__name__ for m in app.user_middleware],
}))
"""


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAMTALK_"))}
    run = subprocess.run(
        [sys.executable, "-c", OFF_BY_DEFAULT, str(tmp_path / "pamtalk.db")],
        env=env | {"PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    # No SDK provider (the API's proxy stays), no instrumentation even imported, no-op spans.
    assert seen["on"] is False and seen["recording"] is False
    assert seen["provider"] == "ProxyTracerProvider"
    assert seen["instrumentations"] == []
    assert "OpenTelemetryMiddleware" not in seen["middleware"]
