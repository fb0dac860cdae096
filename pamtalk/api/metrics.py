"""Prometheus metrics with the seed's names (DESIGN.md).

Under several uvicorn workers ``pamtalk serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start, and ``/metrics`` merges every worker's samples.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

REQUEST_DURATION = Histogram(
    "request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
REQUEST_TOTAL = Counter("request_total", "HTTP requests", ["method", "route", "status"])
ACTIVE_USERS = Gauge(
    "active_users_gauge",
    "Distinct users seen by this process in the last 5 minutes",
    multiprocess_mode="livesum",
)
DB_POOL = Gauge(
    "database_connection_pool",
    "Database connections by state",
    ["state"],
    multiprocess_mode="livesum",
)
CELERY_QUEUE_LENGTH = Gauge(
    "celery_task_queue_length", "Tasks waiting per queue", ["queue"], multiprocess_mode="max"
)
ERRORS_TOTAL = Counter("errors", "Error responses by code", ["code"])
ADMISSION_REJECTED = Counter(
    "admission_rejected", "Requests refused at a worker's edge, by reason", ["reason"]
)
DEADLINE_EXCEEDED = Counter(
    "deadline_exceeded",
    "Requests answered 504 at the edge because their X-Request-Timeout passed first",
)
RATE_LIMITED = Counter(
    "rate_limited", "Requests refused by a rate limit (429), by scope", ["scope"]
)


def _registry() -> CollectorRegistry:
    """This process's metrics, or under several workers every worker's, merged from files."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve_on_port(port: int, host: str) -> None:
    """Serve the metrics on their own port (PAMTALK_METRICS_PORT) from prometheus_client's
    server, in a daemon thread of the calling process: ``pamtalk serve``'s, so one server
    answers for all workers (set PROMETHEUS_MULTIPROC_DIR first when there are several)."""
    start_http_server(port, addr=host, registry=_registry())


class ActiveUsers:
    """Feeds ``active_users_gauge``: distinct users seen within a sliding window."""

    def __init__(self, window: float = 300.0) -> None:
        self._window = window
        self._last_seen: dict[int, float] = {}

    def seen(self, user_id: int, now: float) -> None:
        # Re-inserting keeps the dict ordered by last sighting, so the stale ones are in front.
        self._last_seen.pop(user_id, None)
        self._last_seen[user_id] = now
        cutoff = now - self._window
        while (oldest := next(iter(self._last_seen.items())))[1] < cutoff:
            del self._last_seen[oldest[0]]
        ACTIVE_USERS.set(len(self._last_seen))
