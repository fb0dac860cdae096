"""The load client of bench/serving.py: closed-loop aiohttp workers against one server for one
concurrency (a point), with the CPU the client, the server and the rest of the machine used.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp

from bench import harness
from bench.harness import Load
from bench.serving_servers import Target

REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Point:
    server: str
    concurrency: int
    predictions: int
    errors: int
    per_s: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # cores the load generator used over the window
    server_cpu: float  # cores the server's processes used over the window
    other_cpu: float  # cores anything else on the machine used over the window
    error_kinds: dict[str, int]


@dataclass
class ServerRun:
    """One server, start to stop: its check against ONNX Runtime and every point."""

    server: str
    status: str = "ok"  # or "not run"
    reason: str = ""
    startup_s: float = 0.0
    check_max_abs_diff: float | None = None
    points: list[Point] = field(default_factory=list)


def server_meter(token: str) -> harness.CpuMeter:
    """Meters the server (every process carrying the run's token) besides this process."""
    return harness.CpuMeter({"server": lambda: harness.tagged_pids(token)})


async def worker(
    session: aiohttp.ClientSession,
    server: Target,
    bodies: Iterator[bytes],
    window: tuple[float, float],
    samples: harness.Samples,
) -> None:
    """Sends requests back to back until the window closes; records those ending inside it."""
    headers = server.post_headers
    while time.perf_counter() < window[1]:
        began = time.perf_counter()
        error: str | None = None
        try:
            async with session.post(server.infer_path, data=next(bodies), headers=headers) as r:
                await r.read()
                if r.status != 200:
                    error = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        samples.record(began, time.perf_counter(), window, error)


async def run_point(server: Target, bodies: list[bytes], load: Load, token: str) -> Point:
    samples = harness.Samples()
    connector = aiohttp.TCPConnector(limit=load.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        base_url=server.base_url, connector=connector, timeout=timeout
    ) as session:
        window = load.window()
        cpu = asyncio.create_task(server_meter(token).over(window))
        streams = [
            itertools.islice(itertools.cycle(bodies), i, None) for i in range(load.concurrency)
        ]
        await asyncio.gather(*(worker(session, server, s, window, samples) for s in streams))
    return summarize(server.name, load, samples, await cpu)


async def wait_quiet(token: str, cores: float, patience: float) -> float:
    """Waits until the rest of the machine (not this process, not the server) has used fewer
    than ``cores`` over a second, or ``patience`` s have passed; returns its last use."""
    deadline = time.monotonic() + patience
    while True:
        now = time.perf_counter()
        used = other_cores(await server_meter(token).over((now, now + 1.0)))
        if used < cores or time.monotonic() >= deadline:
            return used


def other_cores(cores: dict[str, float]) -> float:
    return max(0.0, cores["box"] - cores["self"] - cores["server"])


def summarize(name: str, load: Load, samples: harness.Samples, cores: dict[str, float]) -> Point:
    ordered = sorted(samples.latencies)
    return Point(
        server=name,
        concurrency=load.concurrency,
        predictions=len(ordered),
        errors=sum(samples.errors.values()),
        per_s=round(len(ordered) / load.duration, 1),
        p50_ms=round(harness.percentile(ordered, 50) * 1000, 2),
        p99_ms=round(harness.percentile(ordered, 99) * 1000, 2),
        client_cpu=round(cores["self"], 2),
        server_cpu=round(cores["server"], 2),
        other_cpu=round(other_cores(cores), 2),
        error_kinds=dict(samples.errors),
    )
