"""The async engine and the session factory for either database.

Sessions come in two kinds, and every caller names the one it needs:
``sessions.read()`` for a unit of work that only reads, ``sessions.write()`` for one that
writes (or reads, then writes). On PostgreSQL the two are the same. On SQLite (one writer at a
time, WAL) a write transaction begins ``BEGIN IMMEDIATE``: it takes the write lock up front and
waits its turn (the busy timeout), because a deferred transaction that reads and then writes
fails with SQLITE_BUSY at once when another writer committed after its snapshot. A read
transaction begins a plain (deferred) ``BEGIN`` and never takes that lock, so reads run
alongside each other and alongside a writer; and it runs with ``PRAGMA query_only``, so a
write in a read session fails loudly (``attempt to write a readonly database``) instead of
upgrading its lock by surprise. A connection used without a session (``engine.begin()``)
writes, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from pamtalk.settings import Settings

# The execution option that carries a session's kind down to the SQLite "begin" hook.
_ACCESS = "pamtalk_access"


class SessionFactory:
    """Read and write sessions on one engine (one pool); see the module docstring."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._makers = {
            access: async_sessionmaker(
                engine.execution_options(**{_ACCESS: access}), expire_on_commit=False
            )
            for access in ("read", "write")
        }

    def read(self) -> AsyncSession:
        """A session for a unit of work that only reads (writing in it is an error on SQLite)."""
        return self._makers["read"]()

    def write(self) -> AsyncSession:
        """A session for a unit of work that writes; on SQLite it holds the one write lock
        from its first statement to its commit, so keep it short."""
        return self._makers["write"]()


def reading(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for connections that only read (``engine.connect()`` without a session):
    on SQLite they begin as a read session's do."""
    return engine.execution_options(**{_ACCESS: "read"})


def create_engine(settings: Settings, *, statement_timeout: bool = True) -> AsyncEngine:
    """``statement_timeout=False`` for migrations, whose statements may rightly run long."""
    # create_async_engine is looked up when called: tracing's SQLAlchemy instrumentation
    # wraps it, so that every engine made while tracing is on traces its statements.
    if settings.is_sqlite:
        _ensure_sqlite_dir(settings.database_url)
        engine = sqlalchemy_asyncio.create_async_engine(
            settings.database_url, connect_args={"timeout": 30}
        )
        _configure_sqlite(engine)
        return engine
    return sqlalchemy_asyncio.create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=settings.database_pool_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.database_connect_timeout_s,
            "command_timeout": settings.database_command_timeout_s if statement_timeout else None,
        },
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return SessionFactory(engine)


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers, foreign keys on, and each transaction begun by its kind
    (the module docstring says why)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        record.info["query_only"] = False

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        reading = conn.get_execution_options().get(_ACCESS) == "read"
        # query_only is per connection and outlives the transaction: switch it only when the
        # kind changes (a pooled connection mostly serves the same kind again).
        if conn.info.get("query_only") != reading:
            conn.exec_driver_sql(f"PRAGMA query_only={int(reading)}")
            conn.info["query_only"] = reading
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")
