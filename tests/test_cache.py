from __future__ import annotations

import asyncio
import contextlib

from pamtalk.cache import MemoryCache, cached, generation, invalidate


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


async def test_concurrent_misses_share_one_computation() -> None:
    cache = MemoryCache()
    calls = 0

    async def slow() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"n": calls}

    bodies = await asyncio.gather(*(cached(cache, "ns", "k", 60, slow) for _ in range(10)))
    assert calls == 1
    assert set(bodies) == {b'{"n":1}'}


async def test_a_failing_computation_fails_every_waiter_then_retries() -> None:
    cache = MemoryCache()
    attempts = 0

    async def flaky() -> dict[str, int]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.02)
        if attempts == 1:
            raise RuntimeError("database hiccup")
        return {"ok": 1}

    results = await asyncio.gather(
        *(cached(cache, "ns", "k", 60, flaky) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cached(cache, "ns", "k", 60, flaky) == b'{"ok":1}'


async def test_waiters_survive_the_leader_being_cancelled() -> None:
    cache = MemoryCache()
    started = asyncio.Event()

    async def slow() -> dict[str, int]:
        started.set()
        await asyncio.sleep(0.05)
        return {"n": 1}

    leader = asyncio.create_task(cached(cache, "ns", "k", 60, slow))
    await started.wait()
    waiter = asyncio.create_task(cached(cache, "ns", "k", 60, slow))
    await asyncio.sleep(0)
    leader.cancel()
    assert await waiter == b'{"n":1}'
    with contextlib.suppress(asyncio.CancelledError):
        await leader
    assert leader.cancelled()
