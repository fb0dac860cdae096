"""What the benchmark scripts share: a scratch PostgreSQL database, a Redis db, a free port,
and stopping a server's process group. Imported as ``common`` (the scripts run from bench/)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

import asyncpg
from redis import asyncio as aioredis


async def recreate_database(pg_url: str, name: str, *, create: bool = True) -> None:
    conn = await asyncpg.connect(f"{pg_url}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def flush_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
