"""Rate limits, the API gateway's role: login and sign-up per client address, authenticated
requests per user, predictions per user in a bucket of their own (docs/security.md).

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
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from pamtalk.api.metrics import RATE_LIMITED
from pamtalk.errors import TooManyRequests
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

Scope = Literal["auth", "principal", "predictions"]
# Model inference has its own bucket: it costs more than a read, and an app that forecasts
# in bulk must not starve its own reads.
PREDICTION_PREFIXES = ("/v1/predictions", "/v1/esg")
REDIS_TIMEOUT_S = 0.5
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
        self._pool: ConnectionPool | None = None
        storage: Storage
        if url:
            self._pool = ConnectionPool.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
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
