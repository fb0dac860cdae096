from __future__ import annotations

from pamtalk.api.cache import MemoryCache, cached, generation, invalidate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_cache_expires_and_slides() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("a", b"1", ttl=10)
    clock.now += 9
    assert await cache.get_and_touch("a", 10) == b"1"  # slides to now + 10
    clock.now += 9
    assert await cache.get("a") == b"1"
    clock.now += 2
    assert await cache.get("a") is None
    assert await cache.get_and_touch("a", 10) is None


async def test_memory_cache_stays_bounded() -> None:
    clock = Clock()
    cache = MemoryCache(max_entries=3, clock=clock)
    for i in range(5):
        await cache.set(f"k{i}", b"v", ttl=60)
    assert [await cache.get(f"k{i}") for i in range(5)] == [None, None, b"v", b"v", b"v"]


async def test_generation_bump_retires_cached_entries() -> None:
    cache = MemoryCache()
    calls = []

    async def produce() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    async def read() -> bytes:
        key = f"list:{await generation(cache, 'ns')}"
        return await cached(cache, "ns", key, 60, produce)

    assert await read() == b'{"n":1}'
    assert await read() == b'{"n":1}'
    await invalidate(cache, "ns")
    assert await read() == b'{"n":2}'
