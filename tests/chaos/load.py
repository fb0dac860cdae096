"""The bounded client of the scenarios: a fixed number of concurrent workers, every answer
recorded with its time, status and error code."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import harness


@dataclass(frozen=True)
class Outcome:
    kind: str  # what the request was, as the scenario names it
    began: float  # time.monotonic()
    ended: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    code: str | None  # the error body's code, or the transport error's class name
    retry_after: str | None = None

    @property
    def latency(self) -> float:
        return self.ended - self.began


@dataclass
class Record:
    outcomes: list[Outcome] = field(default_factory=list)

    async def send(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: object
    ) -> tuple[Outcome, httpx.Response | None]:
        began = time.monotonic()
        try:
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            outcome = Outcome(kind, began, time.monotonic(), 0, type(exc).__name__)
            self.outcomes.append(outcome)
            return outcome, None
        code = None
        if response.status_code >= 400:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "unparsed"
        outcome = Outcome(
            kind,
            began,
            time.monotonic(),
            response.status_code,
            code,
            response.headers.get("retry-after"),
        )
        self.outcomes.append(outcome)
        return outcome, response

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.began < end]

    def statuses(self) -> dict[str, int]:
        counted = Counter(
            f"{o.status} {o.code}" if o.code else str(o.status) for o in self.outcomes
        )
        return dict(sorted(counted.items()))


def p99_ms(outcomes: list[Outcome]) -> float | None:
    if not outcomes:
        return None
    return round(1000 * harness.percentile(sorted(o.latency for o in outcomes), 99), 1)


async def workers(count: int, work: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """``count`` concurrent loops of ``work(worker_number)``; the first failure propagates."""
    async with asyncio.TaskGroup() as group:
        for number in range(count):
            group.create_task(work(number))


def client(url: str, connections: int) -> httpx.AsyncClient:
    # Idle connections are let go before uvicorn's keep-alive timeout (5 s) closes them: a
    # request sent on one it is closing would fail in the client, not in the server.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    return httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits)
