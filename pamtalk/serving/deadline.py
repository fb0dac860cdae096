"""A request's deadline, carried from the HTTP edge to the batcher in a context variable, so
that a request whose caller has given up is dropped before it costs model time.

    token = deadline.start(0.5)      # the client's X-Request-Timeout, capped by the server
    deadline.remaining()             # seconds left (None: no deadline), in the batcher
    deadline.reset(token)
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_at: ContextVar[float | None] = ContextVar("pamtalk_deadline", default=None)


def start(seconds: float) -> Token[float | None]:
    return _at.set(time.monotonic() + seconds)


def reset(token: Token[float | None]) -> None:
    _at.reset(token)


def remaining() -> float | None:
    at = _at.get()
    return None if at is None else at - time.monotonic()
