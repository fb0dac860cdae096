"""The FastAPI application factory: settings in, a wired app out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from pamtalk import __version__, tracing
from pamtalk.api import context, docs, errors, heap, prod
from pamtalk.api.admission import AdmissionMiddleware
from pamtalk.api.background import start_background, stop_background
from pamtalk.api.metrics import DB_POOL
from pamtalk.api.middleware import RequestMiddleware
from pamtalk.api.ratelimit import AuthLimitMiddleware, RateLimits
from pamtalk.api.routes import (
    auth,
    dashboard,
    esg,
    farms,
    health,
    jobs,
    ledger,
    models,
    notifications,
    oip,
    predictions,
    transactions,
    users,
    webhooks,
)
from pamtalk.api.state import AppState
from pamtalk.cache import create_cache, create_security_store
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.security import PasswordHashing
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Traces when OTEL_EXPORTER_OTLP_ENDPOINT asks (once per process); Celery's instrumentation
    # where tasks are sent, so that a chunk's trace continues on the worker.
    tracing.setup(celery=settings.celery_broker_url is not None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        _watch_pool(engine.sync_engine.pool)
        app.state.pamtalk = AppState(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            cache=create_cache(settings.redis_url, settings.redis_max_connections),
            predictor=PredictorService(settings),
            security=create_security_store(
                settings.security_redis_url or settings.redis_url,
                settings.security_store_max_entries,
                settings.redis_max_connections,
            ),
            rate_limits=RateLimits(settings),
            hashing=PasswordHashing(
                settings.password_hash_concurrency, settings.password_hash_wait_s
            ),
        )
        if settings.env == "prod":
            try:
                await prod.prepare(app.state.pamtalk)  # refuses demo logins; rotates the key
            except BaseException:
                await engine.dispose()
                raise
        await app.state.pamtalk.predictor.start()
        background = start_background(app.state.pamtalk)
        heap.freeze_startup_heap()
        try:
            yield
        finally:
            heap.thaw()
            await stop_background(background)
            await app.state.pamtalk.close_jobs()
            await app.state.pamtalk.predictor.close()
            await app.state.pamtalk.cache.close()
            await app.state.pamtalk.security.close()
            await app.state.pamtalk.rate_limits.close()
            await engine.dispose()

    app = FastAPI(
        title="PAM-TALK serving",
        version=__version__,
        description=docs.DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # docs.install: served from a package, not a CDN
        redoc_url=None,
        # Prod serves no API description: /docs and /openapi.json are 404 there.
        openapi_url="/openapi.json" if settings.serves_docs else None,
    )
    errors.install(app)
    if settings.serves_docs:
        docs.install(app)
    if settings.metrics_on_api_port:  # else `pamtalk serve` serves it on PAMTALK_METRICS_PORT
        app.include_router(health.metrics_router)
    for module in (
        health,
        auth,
        users,
        farms,
        transactions,
        dashboard,
        predictions,
        esg,
        jobs,
        models,
        oip,
        ledger,
        webhooks,
        notifications,
    ):
        app.include_router(module.router, responses=errors.RESPONSES)
    # Added first, so it sits inside RequestMiddleware: its 503s are logged and counted.
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.max_in_flight,
        max_timeout_s=settings.serving_timeout_s,
    )
    # Outside admission: a login flood is refused before it takes in-flight slots.
    app.add_middleware(AuthLimitMiddleware)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    tracing.instrument_app(app, request_id=context.request_id)  # outermost: the server span
    return app


def _watch_pool(pool: Any) -> None:
    """Keep ``database_connection_pool`` current as connections move in and out: ``in_use``,
    ``idle``, and ``max``, the most it will open (pool size + overflow; 0 for a pool without
    a bound), which the DatabaseConnectionPoolExhausted alert divides by."""

    def update(*_: object) -> None:
        checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
        idle = pool.checkedin() if hasattr(pool, "checkedin") else 0
        DB_POOL.labels("in_use").set(checked_out)
        DB_POOL.labels("idle").set(idle)

    # QueuePool keeps its overflow bound private; -1 (unbounded overflow) counts as no bound.
    overflow = getattr(pool, "_max_overflow", -1)
    DB_POOL.labels("max").set(
        pool.size() + overflow if hasattr(pool, "size") and overflow >= 0 else 0
    )
    update()
    for name in ("connect", "checkout", "checkin", "close"):
        event.listen(pool, name, update)
