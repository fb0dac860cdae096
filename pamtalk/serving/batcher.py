"""The dynamic batcher: many callers' rows in, one model call per batch, each caller's own
rows out.

Per model version: a max batch size, a max wait, a bounded queue and a number of batches that
may run at once. A request that finds the model idle is dispatched at once; only while other
batches are running does a new batch wait (up to ``max_wait``) for company. A full queue is a
429 with Retry-After, a missed deadline a 504, and a failing batch fails each of its callers
with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.trace import Span

from pamtalk import tracing
from pamtalk.errors import GatewayTimeout, PamtalkError, ServiceUnavailable, TooManyRequests
from pamtalk.serving import deadline
from pamtalk.serving.metrics import (
    INFERENCE_BATCH_SIZE,
    INFERENCE_COMPUTE_SECONDS,
    INFERENCE_QUEUE_SECONDS,
    INFERENCE_REJECTED,
)
from pamtalk.serving.stacking import stack, unstack

log = logging.getLogger(__name__)

RunBatch = Callable[[list[np.ndarray]], Awaitable[list[np.ndarray]]]


class InferenceFailed(PamtalkError):
    status_code, code = 500, "inference_failed"


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 64
    max_wait: float = 0.002  # seconds a batch may wait for company while the model is busy
    max_queue_rows: int = 4096
    parallelism: int = 1  # batches in flight at once
    timeout: float = 5.0  # a request's deadline, queue and compute together


@dataclass(eq=False)
class _Request:
    inputs: Sequence[np.ndarray]
    rows: int
    future: asyncio.Future[list[np.ndarray]]
    enqueued: float = field(default_factory=time.perf_counter)
    waiting: Span | None = None  # its queue wait, traced: ended when its batch starts


class DynamicBatcher:
    def __init__(self, run: RunBatch, model: str, version: str, policy: BatchPolicy) -> None:
        self._run, self.model, self.version, self.policy = run, model, version, policy
        self._pending: deque[_Request] = deque()
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.parallelism)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._drained = asyncio.Event()
        self._seconds_per_row = 0.0  # moving average, for Retry-After
        self._labels = (model, version)

    @property
    def idle(self) -> bool:
        return not self._pending and self._in_flight == 0

    async def submit(self, inputs: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
        """Run ``rows`` rows (already checked against the contract) in a batch; returns this
        request's rows of every output."""
        if self._closed:
            raise ServiceUnavailable(f"{self.model} v{self.version} is shutting down")
        timeout = self.policy.timeout
        left = deadline.remaining()
        if left is not None:
            if left <= 0:
                INFERENCE_REJECTED.labels(self.model, "deadline").inc()
                raise GatewayTimeout("the request's deadline passed before it reached the model")
            timeout = min(timeout, left)
        if self._pending and self._queued_rows + rows > self.policy.max_queue_rows:
            INFERENCE_REJECTED.labels(self.model, "queue_full").inc()
            raise TooManyRequests(
                f"{self.model} is at capacity ({self._queued_rows} rows queued); retry shortly",
                headers={"Retry-After": str(self._retry_after())},
            )
        if self._loop_task is None:
            # A context of its own: the loop serves every caller, not the first one's trace
            # (or deadline).
            self._loop_task = asyncio.create_task(
                self._dispatch_loop(), context=contextvars.Context()
            )
        request = _Request(inputs, rows, asyncio.get_running_loop().create_future())
        request.waiting = tracing.start_span("batcher.queue_wait", self._span_attributes(rows))
        self._pending.append(request)
        self._queued_rows += rows
        self._arrived.set()
        try:
            # wait_for cancels the future on timeout, so a dispatcher skips it: a request whose
            # deadline passes while queued is dropped before compute.
            return await asyncio.wait_for(request.future, timeout)
        except TimeoutError:
            INFERENCE_REJECTED.labels(self.model, "timeout").inc()
            raise GatewayTimeout(
                f"{self.model} v{self.version} did not answer within {timeout:.3g} s"
            ) from None
        finally:
            tracing.end_span(request.waiting, error="left the queue before its batch ran")

    def _span_attributes(self, rows: int) -> dict[str, str | int]:
        return {"model.name": self.model, "model.version": self.version, "inference.rows": rows}

    def _retry_after(self) -> int:
        backlog = self._queued_rows * self._seconds_per_row / self.policy.parallelism
        return max(1, math.ceil(backlog))

    def _take(self, room: int) -> list[_Request]:
        taken: list[_Request] = []
        while self._pending:
            head = self._pending[0]
            if head.future.done():  # timed out or cancelled while queued
                self._pending.popleft()
                self._queued_rows -= head.rows
                continue
            if head.rows > room and (taken or room < self.policy.max_batch_size):
                break  # an oversized request goes alone, as the first of a batch
            self._pending.popleft()
            self._queued_rows -= head.rows
            taken.append(head)
            room -= head.rows
            if room <= 0:
                break
        return taken

    async def _dispatch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.policy.max_batch_size
        while True:
            await self._slots.acquire()
            batch: list[_Request] = []
            while not batch:
                while not self._pending:
                    self._arrived.clear()
                    await self._arrived.wait()
                batch = self._take(limit)
            rows = sum(r.rows for r in batch)
            if self._in_flight and rows < limit:  # busy: let the batch fill for max_wait
                deadline = loop.time() + self.policy.max_wait
                while rows < limit:
                    if not self._pending:
                        self._arrived.clear()
                        try:
                            await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                        except TimeoutError:
                            break
                    more = self._take(limit - rows)
                    if not more:
                        break
                    batch += more
                    rows += sum(r.rows for r in more)
            self._in_flight += 1
            task = asyncio.create_task(self._dispatch(batch, rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, batch: list[_Request], rows: int) -> None:
        try:
            started = time.perf_counter()
            joined = {"batch.size": rows, "batch.requests": len(batch)}
            for request in batch:
                INFERENCE_QUEUE_SECONDS.labels(*self._labels).observe(started - request.enqueued)
                tracing.end_span(request.waiting, joined)
            INFERENCE_BATCH_SIZE.labels(*self._labels).observe(rows)
            # One inference serves several traces: a child of the first request's wait,
            # linked to the others'.
            waits = [r.waiting for r in batch if r.waiting is not None]
            try:
                with tracing.span(
                    "inference",
                    self._span_attributes(rows) | {"batch.requests": len(batch)},
                    parent=waits[0] if waits else None,
                    links=waits[1:],
                ):
                    outputs = await self._run(stack([r.inputs for r in batch]))
                parts = unstack(outputs, [r.rows for r in batch])
            except Exception as exc:
                reason = "queue_full" if isinstance(exc, TooManyRequests) else "failed"
                INFERENCE_REJECTED.labels(self.model, reason).inc()
                # Our own errors (a backend's 429, say) reach the callers as they are; any
                # other's text (a runtime's, a path) stays in its __cause__ and the log.
                failure = exc
                if not isinstance(exc, PamtalkError):
                    log.warning(
                        "%s v%s: batch of %s rows failed",
                        self.model,
                        self.version,
                        rows,
                        exc_info=exc,
                    )
                    failure = InferenceFailed(
                        f"{self.model} v{self.version} failed on a batch of {rows} rows"
                    )
                    failure.__cause__ = exc
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(failure)
                return
            elapsed = time.perf_counter() - started
            INFERENCE_COMPUTE_SECONDS.labels(*self._labels).observe(elapsed)
            self._seconds_per_row = 0.8 * self._seconds_per_row + 0.2 * elapsed / rows
            for request, part in zip(batch, parts, strict=True):
                if not request.future.done():
                    request.future.set_result(part)
        finally:
            self._in_flight -= 1
            self._slots.release()
            if self._closed and self.idle:
                self._drained.set()

    async def close(self) -> None:
        """Stop taking requests, let the queued and running ones finish, then stop."""
        self._closed = True
        if not self.idle:
            await self._drained.wait()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
