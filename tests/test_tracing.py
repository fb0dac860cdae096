"""pamtalk.tracing turned on by the standard variables alone: a process with
OTEL_EXPORTER_OTLP_ENDPOINT set sends its spans over OTLP (HTTP or gRPC) to a receiver this
test runs (the span trees themselves: tests/serving/test_tracing.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.otlp import Receiver, receiving

ROOT = Path(__file__).resolve().parents[1]

ONE_SPAN = """
from pamtalk import tracing
assert tracing.setup()
with tracing.span("probe", {"pamtalk.test": 1}):
    pass
tracing.flush()
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def names(receiver: Receiver) -> list[tuple[str, str]]:
    return [(span.service, span.name) for span in receiver.spans()]


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAMTALK_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=base | {"PYTHONPATH": str(ROOT)} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_endpoint_variable_turns_traces_on_over_otlp_http(receiver: Receiver) -> None:
    done = run(ONE_SPAN, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [path for path, _ in receiver.requests] == ["/v1/traces"]
    assert names(receiver) == [("pamtalk", "probe")]


def test_otlp_over_grpc(receiver: Receiver) -> None:
    """The same span to an OTLP/gRPC receiver (its requests kept in ``receiver``)."""

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: ExportTraceServiceRequest, context: object
        ) -> ExportTraceServiceResponse:
            receiver.requests.append(("grpc", request))
            return ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        done = run(
            ONE_SPAN,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        )
    finally:
        server.stop(grace=None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert names(receiver) == [("pamtalk", "probe")]


def test_the_standard_variables_name_the_service_and_sample(receiver: Receiver) -> None:
    named = run(ONE_SPAN, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="api")
    assert named.returncode == 0, named.stderr[-3000:]
    assert names(receiver) == [("api", "probe")]
    receiver.requests.clear()
    sampled_out = run(
        ONE_SPAN, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_TRACES_SAMPLER="always_off"
    )
    assert sampled_out.returncode == 0, sampled_out.stderr[-3000:]
    assert names(receiver) == []
