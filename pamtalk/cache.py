"""One cache interface, two stores: Redis when ``PAMTALK_REDIS_URL`` is set, an in-process TTL
cache otherwise.

A cache that is unreachable raises ``CacheUnavailable``. Read-through callers (``cached``)
treat that as a miss and serve from the database; session lookups, which have no other
source, turn it into a 503. A short circuit breaker keeps a dead Redis from adding a connect
timeout to every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import orjson
from prometheus_client import Counter
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from pamtalk import tracing
from pamtalk.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


# Namespaces shared by the writers that invalidate them and the readers that fill them.
FARMS_NS = "farms"
DASHBOARD_NS = "dashboard"


CACHE_REQUESTS = Counter(
    "cache_requests",
    "Cache lookups by namespace and result (hit, miss, error)",
    ["namespace", "result"],
)


class CacheUnavailable(ServiceUnavailable):
    code = "cache_unavailable"


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def get_and_touch(self, key: str, ttl: int) -> bytes | None: ...
    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int: ...
    async def add_member(self, key: str, member: str, ttl: int) -> None: ...
    async def take_members(self, key: str) -> list[str]: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Per-process TTL cache for the embedded single-box mode."""

    def __init__(
        self, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._max_entries = max_entries
        self._clock = clock

    def _live(self, key: str) -> tuple[float, bytes] | None:
        entry = self._data.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return entry[1] if entry else None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        if len(self._data) >= self._max_entries:
            self._evict()
        self._data[key] = (self._clock() + ttl, value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def get_and_touch(self, key: str, ttl: int) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._data[key] = (self._clock() + ttl, entry[1])
        return entry[1]

    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int:
        entry = self._live(key)
        if entry is None:
            if len(self._data) >= self._max_entries:
                self._evict()
            expires = self._clock() + ttl if ttl is not None else float("inf")
            entry = (expires, b"0")
        value = int(entry[1]) + amount
        self._data[key] = (entry[0], str(value).encode())
        return value

    async def add_member(self, key: str, member: str, ttl: int) -> None:
        """Adds ``member`` to the set at ``key``; the set lives ``ttl`` s from its last add."""
        entry = self._live(key)
        members = entry[1].split(b"\n") if entry else []
        if member.encode() not in members:
            members.append(member.encode())
        await self.set(key, b"\n".join(members), ttl)

    async def take_members(self, key: str) -> list[str]:
        """The set at ``key``, removed in the same step."""
        entry = self._live(key)
        self._data.pop(key, None)
        return [m.decode() for m in entry[1].split(b"\n")] if entry else []

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._data.items() if expires <= now]:
            del self._data[key]
        while len(self._data) >= self._max_entries:  # still full: drop the oldest inserted
            del self._data[next(iter(self._data))]


REDIS_TIMEOUT_S = 0.5


def redis_pool(
    url: str, max_connections: int, timeout: float = REDIS_TIMEOUT_S
) -> aioredis.BlockingConnectionPool:
    """A bounded pool: past ``max_connections`` a call waits up to ``timeout`` for a free
    connection. redis-py's default pool has no bound, so every slow spell left the worker
    holding as many connections as it had calls in flight then, for good (the soak saw it)."""
    return aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def pool_exhausted(exc: BaseException) -> bool:
    """No free pooled connection within the wait: Redis is fine, this worker is busy."""
    return isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError)


class RedisCache:
    def __init__(self, url: str, *, max_connections: int = 16, cooldown: float = 2.0) -> None:
        self._redis = aioredis.Redis.from_pool(redis_pool(url, max_connections))  # owns it
        self._cooldown = cooldown
        self._down_until = 0.0
        # Counter bumps (invalidations) that failed during an outage, replayed on recovery so
        # that entries written before the outage do not outlive it.
        self._missed_incr: set[str] = set()

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._down_until:
            raise CacheUnavailable("cache is unavailable")
        try:
            while self._missed_incr:
                key = next(iter(self._missed_incr))
                await self._redis.incr(key)
                self._missed_incr.discard(key)
            return await op()
        except (RedisError, OSError) as exc:
            if pool_exhausted(exc):  # this worker is busy, Redis is not down: no breaker
                raise CacheUnavailable("cache is busy") from exc
            self._down_until = time.monotonic() + self._cooldown
            log.warning("redis unavailable, bypassing for %.1fs: %s", self._cooldown, exc)
            # The idle pooled connections are as dead as this one: dropped now, so that the
            # first call after a restart does not trip the breaker again on each of them.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.connection_pool.disconnect(inuse_connections=False)
            raise CacheUnavailable("cache is unavailable") from exc

    async def get(self, key: str) -> bytes | None:
        return await self._call(lambda: self._redis.get(key))  # type: ignore[arg-type,return-value]

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._call(lambda: self._redis.set(key, value, ex=ttl))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(key))

    async def get_and_touch(self, key: str, ttl: int) -> bytes | None:
        return await self._call(lambda: self._redis.getex(key, ex=ttl))  # type: ignore[arg-type,return-value]

    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int:
        async def incr_with_ttl(ttl: int) -> int:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, amount)
                pipe.expire(key, ttl, nx=True)
                value, _ = await pipe.execute()
            return int(value)

        try:
            if ttl is not None:
                return await self._call(lambda: incr_with_ttl(ttl))
            return int(await self._call(lambda: self._redis.incrby(key, amount)))
        except CacheUnavailable:
            if ttl is None and amount == 1:
                self._missed_incr.add(key)
            raise

    async def add_member(self, key: str, member: str, ttl: int) -> None:
        async def add() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, member)
                pipe.expire(key, ttl)
                await pipe.execute()

        await self._call(add)

    async def take_members(self, key: str) -> list[str]:
        async def take() -> list[str]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.smembers(key)
                pipe.delete(key)
                members, _ = await pipe.execute()
            return [m.decode() for m in members]

        return await self._call(take)

    async def ping(self) -> bool:
        try:
            return bool(await self._call(lambda: self._redis.ping()))
        except CacheUnavailable:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


class SingleFlight:
    """Concurrent calls with the same key share one execution (within this process), so a
    cold hot key costs one database query, not one per request in flight."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[bytes]] = {}

    async def do(self, key: str, produce: Callable[[], Awaitable[bytes]]) -> bytes:
        shared = self._calls.get(key)
        if shared is not None:
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not shared.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The leader was cancelled (its client went away), not us: do it ourselves.
                return await produce()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            result = await produce()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: with no waiters it is not an error
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._calls[key]


_flights: weakref.WeakKeyDictionary[Cache, SingleFlight] = weakref.WeakKeyDictionary()


def create_cache(redis_url: str | None, max_connections: int = 16) -> Cache:
    return RedisCache(redis_url, max_connections=max_connections) if redis_url else MemoryCache()


def create_security_store(
    redis_url: str | None, max_entries: int, max_connections: int = 16
) -> Cache:
    """Where sessions and login counters live: never the response cache's own store, so that
    cached pages cannot evict them. In-process a store of its own; with Redis, one that must
    not evict (maxmemory-policy noeviction, docs/security.md)."""
    if redis_url:
        return RedisCache(redis_url, max_connections=max_connections)
    return MemoryCache(max_entries)


async def cached(
    cache: Cache, namespace: str, key: str, ttl: int, produce: Callable[[], Awaitable[object]]
) -> bytes:
    """Read-through JSON cache. Returns serialised JSON; on any cache failure, computes it."""
    return (await read_through(cache, namespace, key, ttl, produce))[0]


async def read_through(
    cache: Cache, namespace: str, key: str, ttl: int, produce: Callable[[], Awaitable[object]]
) -> tuple[bytes, bool]:
    """``cached``, and whether the answer came from the cache (False when it was computed
    for this call or for concurrent identical calls that shared one computation)."""
    # Traced as one span per lookup (hit or not) holding the get, the computation on a miss
    # (the model's queue wait and inference, say) and the set.
    with tracing.span("cache.read_through", {"cache.namespace": namespace}) as span:
        full_key = f"{namespace}:{key}"
        try:
            with tracing.span("cache.get", {"cache.namespace": namespace}) as get:
                hit = await cache.get(full_key)
                get.set_attribute("cache.hit", hit is not None)
        except CacheUnavailable:
            CACHE_REQUESTS.labels(namespace, "error").inc()
            span.set_attributes({"cache.hit": False, "cache.result": "error"})
            return orjson.dumps(await produce()), False
        result = "hit" if hit is not None else "miss"
        span.set_attributes({"cache.hit": hit is not None, "cache.result": result})
        CACHE_REQUESTS.labels(namespace, result).inc()
        if hit is not None:
            return hit, True

        async def fill() -> bytes:
            # A flight for this key may have ended between our miss and now (the loop was
            # busy with it while our read was answered): take its answer, not compute again.
            with contextlib.suppress(CacheUnavailable):
                if (done := await cache.get(full_key)) is not None:
                    return done
            body = orjson.dumps(await produce())
            with (
                contextlib.suppress(CacheUnavailable),
                tracing.span("cache.set", {"cache.namespace": namespace, "cache.ttl_s": ttl}),
            ):
                await cache.set(full_key, body, ttl)
            return body

        return await _flights.setdefault(cache, SingleFlight()).do(full_key, fill), False


async def generation(cache: Cache, namespace: str) -> str:
    """The namespace's current generation; bumping it (``invalidate``) retires every key
    built on the old one at once, without scanning Redis."""
    try:
        value = await cache.get(f"{namespace}:gen")
    except CacheUnavailable:
        return "down"
    return value.decode() if value else "0"


async def invalidate(cache: Cache, namespace: str) -> None:
    try:
        await cache.incr(f"{namespace}:gen")
    except CacheUnavailable:
        # The entries will expire on their TTL; log loudly since readers may see stale data.
        log.error("could not invalidate cache namespace %s", namespace)
