"""OpenTelemetry traces: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and then on for the whole process.

Off, nothing is set up: no SDK provider, no instrumentation imported, and ``span`` hands back
one shared no-op context, so the calls left in serving, batching and the cache cost a check.
On (the ``tracing`` extra), ``setup`` installs the SDK's provider with a BatchSpanProcessor and
the OTLP exporter (``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``, the default, or
``grpc``), and the official instrumentations: FastAPI (``instrument_app``), SQLAlchemy (every
engine made after it), Redis, and Celery where the process sends or runs tasks. The standard
variables apply: ``OTEL_SERVICE_NAME`` (default ``pamtalk``), ``OTEL_TRACES_SAMPLER`` and its
argument, the exporter's headers and timeouts.

    tracing.setup(celery=True)                   # once per process: the app factory, a worker
    with tracing.span("cache.get", {"cache.namespace": ns}) as span:
        span.set_attribute("cache.hit", hit)     # a no-op span when tracing is off

Every span started while a request is served carries its ``request_id`` (the source is given
by ``instrument_app``), so the SQL, Redis and our own spans of one request can be found by it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, Span
from opentelemetry.util.types import AttributeValue

from pamtalk import __version__, extras

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

Attributes = Mapping[str, AttributeValue]

REQUEST_ID = "request_id"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Probes and scrapes: frequent, and nothing to learn from their traces.
UNTRACED_PATHS = ("/metrics", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")

# None while tracing is off; our spans then cost one check.
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_instrumentors: list[Any] = []


def _no_request() -> str | None:
    return None


_request_id: Callable[[], str | None] = _no_request
_OFF: contextlib.nullcontext[Span] = contextlib.nullcontext(INVALID_SPAN)
_TRACED: contextlib.nullcontext[None] = contextlib.nullcontext()
# Set while an untraced path is served: our spans are no-ops there too.
_untraced: ContextVar[bool] = ContextVar("pamtalk_untraced", default=False)


def requested() -> bool:
    """Whether this process's environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def on() -> bool:
    return _tracer is not None


def setup(*, celery: bool = False) -> bool:
    """Turn tracing on for this process when the environment asks for it (``requested``);
    returns whether it is on. Again in the same process: nothing more (``celery`` adds the
    Celery instrumentation if it was not there). MissingExtra without the ``tracing`` extra."""
    if _provider is not None:
        if celery:
            _instrument_celery(_provider)
        return True
    if not requested():
        return False
    extras.require("tracing", "OTEL_EXPORTER_OTLP_ENDPOINT (traces)")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "pamtalk"}))
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    trace.set_tracer_provider(provider)
    start(provider, celery=celery)
    log.info("tracing on: %s", provider.resource.attributes.get("service.name"))
    return True


def _otlp_exporter() -> Any:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    # Each exporter reads the endpoint, headers, timeout and compression from the environment.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: traces go over 'http/protobuf' or 'grpc'"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def start(provider: TracerProvider, *, celery: bool = False) -> None:
    """Trace into ``provider`` (setup's, or a test's with an in-memory exporter): our spans,
    request ids on every span, and the Redis and SQLAlchemy instrumentations."""
    global _provider, _tracer
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    provider.add_span_processor(_request_id_processor())
    _provider, _tracer = provider, provider.get_tracer("pamtalk", __version__)
    RedisInstrumentor().instrument(tracer_provider=provider)
    # Its declared range stops below SQLAlchemy 2.1, which we run; what it uses (the engine's
    # cursor and pool events) is unchanged in 2.1, and tests/serving/test_tracing.py checks
    # that statements come out as spans.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    _instrumentors.extend([RedisInstrumentor(), SQLAlchemyInstrumentor()])
    if celery:
        _instrument_celery(provider)


def _instrument_celery(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
        _instrumentors.append(instrumentor)


def stop() -> None:
    """Back to off: the instrumentations removed, our spans no-ops (a test's provider is
    the test's to shut down)."""
    global _provider, _tracer, _request_id
    for instrumentor in reversed(_instrumentors):
        instrumentor.uninstrument()
    _instrumentors.clear()
    _provider, _tracer, _request_id = None, None, _no_request


def flush(timeout_ms: int = 5000) -> None:
    """Export what is buffered now (a worker process about to end)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def instrument_app(app: Any, request_id: Callable[[], str | None]) -> None:
    """The FastAPI instrumentation's server span around every request (probes excepted);
    ``request_id`` gives the request being served, for the spans started under it."""
    global _request_id
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    _request_id = request_id
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=",".join(UNTRACED_PATHS),
        # One span per request, not one more per ASGI message received and sent.
        exclude_spans=["receive", "send"],
    )


def untraced(path: str) -> contextlib.AbstractContextManager[None]:
    """Around serving ``path``: for a probe or a scrape (UNTRACED_PATHS, which have no server
    span) nothing is traced, so their SQL and Redis calls do not become traces of their own."""
    if _tracer is None or path not in UNTRACED_PATHS:
        return _TRACED
    return _suppressed()


@contextlib.contextmanager
def _suppressed() -> Iterator[None]:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    token = _untraced.set(True)
    try:
        with suppress_instrumentation():
            yield
    finally:
        _untraced.reset(token)


def tag_request(request_id: str) -> None:
    """Put ``request_id`` on the server span (it starts before the id is known)."""
    if _tracer is not None:
        trace.get_current_span().set_attribute(REQUEST_ID, request_id)


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    parent: Span | None = None,
    links: Sequence[Span] = (),
) -> contextlib.AbstractContextManager[Span]:
    """A span around the block, current inside it (a child of ``parent`` when given, else of
    the current span); a shared no-op while tracing is off. An exception leaving the block is
    recorded on it."""
    if _tracer is None or _untraced.get():
        return _OFF
    context = trace.set_span_in_context(parent) if parent is not None else None
    return _tracer.start_as_current_span(
        name,
        context=context,
        attributes=attributes,
        links=[Link(other.get_span_context()) for other in links],
    )


def start_span(name: str, attributes: Attributes | None = None) -> Span | None:
    """A span that starts now under the current one but is not made current: for a wait that
    another task ends (``end_span``). None while tracing is off."""
    if _tracer is None or _untraced.get():
        return None
    return _tracer.start_span(name, attributes=attributes)


def end_span(span: Span | None, attributes: Attributes | None = None, error: str = "") -> None:
    """End ``span`` (if still open) with ``attributes`` and, when ``error`` says why, an
    error status."""
    if span is None or not span.is_recording():
        return
    if attributes:
        span.set_attributes(attributes)
    if error:
        span.set_status(trace.StatusCode.ERROR, error)
    span.end()


def _request_id_processor() -> Any:
    """Copies the request being served onto each span as it starts (SQL, Redis, ours), or
    else its parent's (a batch's inference, started outside any request, under its first
    request's queue wait). Made here, not at import: the SDK loads only when tracing is on."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RequestIdProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            request_id = _request_id()
            if request_id is None:
                parent = getattr(trace.get_current_span(parent_context), "attributes", None)
                request_id = parent.get(REQUEST_ID) if parent else None
            if request_id is not None:
                span.set_attribute(REQUEST_ID, request_id)

    return RequestIdProcessor()
