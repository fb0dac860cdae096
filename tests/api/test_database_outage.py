"""The database going away answers 503 ``database_unavailable`` with Retry-After, never a 500.

Found by tests/chaos (PostgreSQL restarted under writes): a refused connection and a connection
terminated mid-statement were 500s, and answered after Starlette re-raised them, so that the
server closed the keep-alive connection and the client's next request got no answer at all."""

from __future__ import annotations

import asyncpg.exceptions
import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from pamtalk.api import errors
from pamtalk.db import outage


def _terminated() -> sqlalchemy.exc.DBAPIError:
    cause = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    try:
        raise RuntimeError("adapter error") from cause
    except RuntimeError as adapted:
        return sqlalchemy.exc.DBAPIError("INSERT ...", {}, adapted)


FAULTS: dict[str, BaseException] = {
    "refused": ConnectionRefusedError(111, "Connection refused"),
    "shutting_down": asyncpg.exceptions.CannotConnectNowError("the database is shutting down"),
    "admin_shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection"),
    "terminated": _terminated(),
    "invalidated": sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("gone"), connection_invalidated=True
    ),
}


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/fault/{name}")
    async def fault(name: str) -> None:
        if name == "integrity":
            raise sqlalchemy.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))
        raise FAULTS[name]

    return app


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_a_lost_database_is_a_retriable_503(name: str) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get(f"/fault/{name}")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"
    assert answer.headers["retry-after"] == "1"


async def test_other_database_errors_stay_500s() -> None:
    assert not outage.database_unavailable(
        sqlalchemy.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))
    )
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/fault/integrity")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
