"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from pamtalk.api.deps import StateDep
from pamtalk.api.metrics import render
from pamtalk.api.responses import JSONResponse
from pamtalk.db.migrate import current_revision, head_revision
from pamtalk.db.session import reading

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> Response:
    """Ready to take traffic: the database answers and its schema is at the migrations' head.
    The cache is reported but does not gate readiness: requests are served without it."""
    checks: dict[str, str] = {}
    head = head_revision()
    try:
        async with reading(state.engine).connect() as conn:  # never waits for a writer
            await conn.execute(text("SELECT 1"))
            current = await conn.run_sync(current_revision)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["cache"] = "ok" if await state.cache.ping() else "unavailable (bypassed)"
    ready = checks["database"] == "ok" and checks.get("migrations") == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


# Included on the API port only outside prod and without PAMTALK_METRICS_PORT (app.py).
metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
