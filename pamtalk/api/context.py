"""Per-request context shared by the middleware, auth and logs (request id, user id)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestContext:
    request_id: str
    user_id: int | None = None
    error_code: str | None = None


# A mutable holder, so values set deep inside a handler are visible to the middleware's log.
current: ContextVar[RequestContext | None] = ContextVar("pamtalk_request", default=None)


def request_id() -> str | None:
    ctx = current.get()
    return ctx.request_id if ctx else None
