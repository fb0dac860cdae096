"""Rate limits, the API gateway's role: login and sign-up per client address (at the
worker's edge, ``AuthLimitMiddleware``), authenticated requests per user and predictions per
user in a bucket of their own (as the caller is resolved, ``deps.get_optional_principal``).
See docs/security.md.

Counted by the ``limits`` library over a sliding window, in Redis (one atomic script per hit,
shared by every worker) when ``PAMTALK_SECURITY_REDIS_URL`` or ``PAMTALK_REDIS_URL`` is set,
in this process otherwise. A request over its limit is a 429 with ``Retry-After``; every
counted answer carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``.
If Redis is unreachable the limits fail open (the request is served, the outage logged), as
the response cache does: a dead Redis must not take the API down with it.

The client address is the TCP peer's, or what ``X-Forwarded-For`` says only when the peer
is one of ``PAMTALK_TRUSTED_PROXIES`` (uvicorn rewrites it, see ``pamtalk.cli.serve``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from pamtalk.api.errors import error_response
from pamtalk.api.metrics import RATE_LIMITED
from pamtalk.cache import pool_exhausted, redis_pool
from pamtalk.errors import TooManyRequests
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

Scope = Literal["auth", "principal", "predictions"]
# Login and sign-up: counted per client address at the worker's edge (AuthLimitMiddleware).
AUTH_ROUTES = frozenset({("POST", "/v1/auth/login"), ("POST", "/v1/users")})
# Model inference has its own bucket: it costs more than a read, and an app that forecasts
# in bulk must not starve its own reads.
PREDICTION_PREFIXES = ("/v1/predictions", "/v1/esg")
REDIS_COOLDOWN_S = 2.0


def client_address(request: Request) -> str:
    """The caller's address as the limits see it (the proxy-resolved peer)."""
    return request.client.host if request.client else "unknown"


def scope_of(path: str) -> Scope:
    """The bucket an authenticated request counts in."""
    if path.startswith(PREDICTION_PREFIXES) or (
        path.startswith("/v2/models/") and path.endswith("/infer")
    ):
        return "predictions"
    return "principal"


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.items: dict[Scope, RateLimitItem] = {
            "auth": parse(settings.rate_limit_auth),
            "principal": parse(settings.rate_limit_principal),
            "predictions": parse(settings.rate_limit_predictions),
        }
        url = settings.security_redis_url or settings.redis_url
        self._pool: BlockingConnectionPool | None = None
        storage: Storage
        if url:
            self._pool = redis_pool(url, settings.redis_max_connections)
            storage = RedisStorage(
                f"async+{url}",
                implementation="redispy",
                key_prefix="pamtalk-ratelimit",
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._down_until = 0.0

    async def hit(self, scope: Scope, identity: str) -> dict[str, str]:
        """Counts one request of ``identity`` in ``scope``: the RateLimit headers for the
        answer, or ``TooManyRequests`` (with them and Retry-After) when over the limit."""
        if not self.enabled or time.monotonic() < self._down_until:
            return {}
        item = self.items[scope]
        try:
            allowed = await self._limiter.hit(item, scope, identity)
            stats = await self._limiter.get_window_stats(item, scope, identity)
        except (RedisError, OSError) as exc:
            if pool_exhausted(exc):  # this worker is busy, Redis is not down
                return {}
            self._down_until = time.monotonic() + REDIS_COOLDOWN_S
            log.warning("rate limits unavailable (serving without them): %s", exc)
            return {}
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            RATE_LIMITED.labels(scope).inc()
            raise TooManyRequests(
                f"rate limit exceeded ({scope}: {item.amount} per "
                f"{item.get_expiry()} s); retry in {reset} s",
                headers={**headers, "Retry-After": str(reset)},
            )
        return headers

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        timer = getattr(self._storage, "timer", None)  # MemoryStorage's expiry task
        if timer is not None:
            timer.cancel()


class AuthLimitMiddleware:
    """The per-address limit of login and sign-up, applied before the request is admitted
    (it sits outside ``AdmissionMiddleware``): a flood of logins is answered 429 without
    taking the worker's in-flight slots from other callers, or reaching a password hash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in AUTH_ROUTES:
            await self.app(scope, receive, send)
            return
        limits: RateLimits = scope["app"].state.pamtalk.rate_limits
        client = scope.get("client")
        try:
            headers = await limits.hit("auth", client[0] if client else "unknown")
        except TooManyRequests as exc:
            response = error_response(429, exc.code, exc.message, headers=exc.headers)
            await response(scope, receive, send)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
