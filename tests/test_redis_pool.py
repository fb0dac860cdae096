"""The Redis pools are bounded: a worker never holds more connections than the bound, and a
full pool is a cache miss for that call, not an outage (the breaker stays closed)."""

from __future__ import annotations

import asyncio

import pytest
from redis import Redis

from pamtalk.cache import CacheUnavailable, RedisCache
from tests.services import RedisProcess


def clients(url: str) -> int:
    """Connections the server has, less this one asking."""
    with Redis.from_url(url) as admin:
        return len(admin.client_list()) - 1


async def test_a_full_pool_is_a_miss_that_does_not_trip_the_breaker(
    redis_process: RedisProcess,
) -> None:
    cache = RedisCache(redis_process.url, max_connections=2)
    try:
        await cache.set("k", b"v", 60)
        # A burst far past the bound: every call is answered, over at most two connections.
        results = await asyncio.gather(*(cache.get("k") for _ in range(200)))
        assert results == [b"v"] * 200
        assert clients(redis_process.url) <= 2

        pool = cache._redis.connection_pool  # held by hand: a worker busy on both
        held = [await pool.get_connection() for _ in range(2)]
        with pytest.raises(CacheUnavailable, match="busy"):
            await cache.get("k")
        for connection in held:
            await pool.release(connection)
        assert await cache.get("k") == b"v"  # at once: no cool-down was started
    finally:
        await cache.close()


async def test_a_dead_redis_still_trips_the_breaker(redis_process: RedisProcess) -> None:
    cache = RedisCache(redis_process.url, max_connections=2, cooldown=60)
    try:
        await cache.set("k", b"v", 60)
        redis_process.stop()
        with pytest.raises(CacheUnavailable, match="unavailable"):
            await cache.get("k")
        redis_process.start()
        with pytest.raises(CacheUnavailable, match="unavailable"):  # bypassed in the cool-down
            await cache.get("k")
    finally:
        await cache.close()
