"""Read and write sessions on SQLite: reads never wait for the write lock, writes queue on it
without "database is locked", and a write in a read session fails instead of upgrading."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pamtalk.db.session import SessionFactory, create_engine, create_session_factory
from pamtalk.settings import Settings

# A read that waited for the write lock would wait here until the writer commits, which the
# test does only after the reads: the guard turns such a hang into a failure.
HANG_GUARD_S = 20


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[SessionFactory]:
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db"))
    async with engine.begin() as conn:  # no session: a write, as migrations are
        await conn.exec_driver_sql("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
        await conn.exec_driver_sql("INSERT INTO counter VALUES (1, 0)")
    yield create_session_factory(engine)
    await engine.dispose()


async def _count(sessions: SessionFactory) -> int:
    async with sessions.read() as session:
        return int(await session.scalar(text("SELECT n FROM counter WHERE id = 1")))


async def test_reads_run_while_a_write_transaction_holds_the_lock(
    sessions: SessionFactory,
) -> None:
    async with sessions.write() as writer:
        await writer.execute(text("UPDATE counter SET n = 41 WHERE id = 1"))
        # The writer holds SQLite's write lock (BEGIN IMMEDIATE) until it commits.
        seen = await asyncio.wait_for(
            asyncio.gather(*(_count(sessions) for _ in range(8))), HANG_GUARD_S
        )
        assert seen == [0] * 8  # each read its own snapshot, before the uncommitted write
        await writer.commit()
    assert await _count(sessions) == 41


async def test_concurrent_read_modify_writes_queue_without_errors(
    sessions: SessionFactory,
) -> None:
    """Each writer reads the counter and writes it plus one, with readers in between: begun
    deferred, a writer whose snapshot another commit overtook would fail SQLITE_BUSY at once;
    begun IMMEDIATE they wait their turn and no increment is lost."""

    async def increment() -> None:
        async with sessions.write() as session:
            n = await session.scalar(text("SELECT n FROM counter WHERE id = 1"))
            await asyncio.sleep(0)  # let the others start theirs
            await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            await session.commit()

    work = [increment() for _ in range(40)] + [_count(sessions) for _ in range(40)]
    results = await asyncio.gather(*work, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await _count(sessions) == 40


async def test_a_write_in_a_read_session_fails_and_leaves_the_connection_usable(
    sessions: SessionFactory,
) -> None:
    async with sessions.read() as session:
        with pytest.raises(OperationalError, match="readonly database"):
            await session.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))
    # The pool hands the same connection to a writer next: it must write again.
    async with sessions.write() as session:
        await session.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))
        await session.commit()
    assert await _count(sessions) == 7
