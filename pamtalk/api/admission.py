"""Admission control, at the edge of each worker: at most ``max_in_flight`` requests at
once (beyond it a fast 503 with Retry-After, instead of a queue that makes every request
late), and the client's deadline (``X-Request-Timeout: 0.5``, capped by the server's own):
carried to the batcher, which drops a request whose deadline passed before compute, and held
here, where a request still unanswered at its deadline gets a 504 then (a slow or
partitioned database must not make the client wait past the time it asked for).

Health, readiness and metrics are exempt: an overloaded worker must still say so."""

from __future__ import annotations

import asyncio
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pamtalk.api.errors import error_response
from pamtalk.api.metrics import ADMISSION_REJECTED, DEADLINE_EXCEEDED
from pamtalk.serving import deadline

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
TIMEOUT_HEADER = b"x-request-timeout"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, max_in_flight: int, max_timeout_s: float) -> None:
        self.app, self.max_in_flight, self.max_timeout_s = app, max_in_flight, max_timeout_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            ADMISSION_REJECTED.labels("in_flight").inc()
            response = error_response(
                503,
                "overloaded",
                f"this worker has {self.in_flight} requests in flight (its limit); retry shortly",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        seconds: float | None = None  # no header: the batcher's own timeout applies
        raw = dict(scope["headers"]).get(TIMEOUT_HEADER)
        if raw is not None:
            try:
                asked = float(raw.decode("latin-1"))
            except ValueError:
                asked = math.nan
            if not 0 < asked < math.inf:
                response = error_response(
                    400,
                    "bad_request",
                    "X-Request-Timeout must be a positive number of seconds, e.g. 0.5",
                )
                await response(scope, receive, send)
                return
            seconds = min(asked, self.max_timeout_s)
        self.in_flight += 1
        if seconds is None:
            try:
                await self.app(scope, receive, send)
            finally:
                self.in_flight -= 1
            return
        token = deadline.start(seconds)
        try:
            await self._within(seconds, scope, receive, send)
        finally:
            deadline.reset(token)

    async def _within(self, seconds: float, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers by the deadline. The request goes on in its own task until it has unwound
        (a database call bounded by its command timeout), holding its in-flight slot till
        then: requests stuck behind a slow dependency count, so the excess is shed."""
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the deadline's 504 went first; the late answer is dropped
            started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        task.add_done_callback(self._release)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:  # the server is stopping, or the client went away
            task.cancel()
            raise
        if done:
            task.result()  # re-raise what the app raised
            return
        if started:  # the answer is being streamed: let it finish
            await task
            return
        answered = True
        task.cancel()
        DEADLINE_EXCEEDED.inc()
        response = error_response(
            504,
            "deadline_exceeded",
            f"no answer within the request's deadline ({seconds:g} s, X-Request-Timeout)",
        )
        await response(scope, receive, send)

    def _release(self, _: asyncio.Future[None]) -> None:
        self.in_flight -= 1
