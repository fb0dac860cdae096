"""An OTLP/HTTP trace receiver for tests: what a collector would get from a process whose
OTEL_EXPORTER_OTLP_ENDPOINT points here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class Received:
    """One span as exported, with the name of the service that sent it."""

    service: str
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, Any]


def _value(any_value: Any) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


class Receiver:
    """Keeps every export request it is sent (HTTP: path and body; gRPC tests add theirs)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, ExportTraceServiceRequest.FromString(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Received]:
        found = []
        for _, request in list(self.requests):
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    found += [
                        Received(
                            resource["service.name"],
                            s.name,
                            s.trace_id,
                            s.span_id,
                            s.parent_span_id,
                            {a.key: _value(a.value) for a in s.attributes},
                        )
                        for s in scope.spans
                    ]
        return found

    def wait_for(self, name: str, within: float = 30) -> Received:
        """The first span called ``name``, waiting for it to be exported."""
        deadline = time.monotonic() + within
        while True:
            for span in self.spans():
                if span.name == name:
                    return span
            if time.monotonic() > deadline:
                raise AssertionError(f"no span {name!r}: {[s.name for s in self.spans()]}")
            time.sleep(0.1)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
