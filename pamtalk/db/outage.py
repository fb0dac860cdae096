"""Telling a database that went away from one that refused a statement: the API answers the
first with a retriable 503, batch workers wait it out, the CLI keeps following a job."""

from __future__ import annotations

import sqlalchemy.exc

# The database went away (restart, failover, a dropped connection) rather than refused the
# statement: SQLSTATE class 08 (connection exception) and 57P01-03 (shutdown, cannot connect
# now), as the driver's error (asyncpg's, under SQLAlchemy's wrapper) carries it.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the database being unreachable."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chain is short: SQLAlchemy's wrapper, its adapter, asyncpg's error
        if seen is None:
            return False
        # TimeoutError: a statement or connect timeout (asyncpg's command_timeout) ran out.
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _SHUTDOWN_STATES):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False
