"""The ``pamtalk`` command. Thin: parses arguments, then calls into the packages."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from pamtalk.settings import Settings

app = typer.Typer(help="PAM-TALK serving: API, models, batch scoring.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")

T = TypeVar("T")


def _run(work: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(work(Settings()))


async def _upgrade(settings: Settings) -> None:
    from pamtalk.api.db.migrate import upgrade
    from pamtalk.api.db.session import create_engine

    engine = create_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _seed(settings: Settings, *, only_if_empty: bool, size: object = None) -> None:
    from pamtalk.api.db import seed
    from pamtalk.api.db.session import create_engine, create_session_factory

    if settings.env == "prod":
        typer.echo("not seeding: PAMTALK_ENV=prod refuses demo users", err=True)
        if not only_if_empty:
            raise typer.Exit(2)
        return
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            if not await seed.is_empty(session):
                typer.echo("database already has farms; not seeding")
                if not only_if_empty:
                    raise typer.Exit(1)
                return
            typer.echo("seeding demo data ...")
            counts = await seed.seed(
                session, size if isinstance(size, seed.SeedSize) else seed.SeedSize()
            )
            typer.echo("seeded " + ", ".join(f"{n} {what}" for what, n in counts.items()))
            typer.echo(
                f"demo logins: {seed.ADMIN_EMAIL}, farmer1@pamtalk.local, "
                f"buyer1@pamtalk.local, analyst1@pamtalk.local; "
                f"password '{seed.DEMO_PASSWORD}'"
            )
    finally:
        await engine.dispose()


async def _bootstrap_admin(settings: Settings) -> None:
    from pamtalk.api.db.seed import ensure_admin_api_key
    from pamtalk.api.db.session import create_engine, create_session_factory

    if not settings.admin_api_key:
        return
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            if await ensure_admin_api_key(session, settings.admin_api_key):
                typer.echo("admin API key from PAMTALK_ADMIN_API_KEY registered")
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest."""
    _run(_upgrade)
    typer.echo("database is at the latest migration")


@db_app.command("seed")
def db_seed(
    farms: Annotated[int, typer.Option(min=1, help="number of farms")] = 300,
    transactions: Annotated[int, typer.Option(min=0, help="number of transactions")] = 60_000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="days of history")] = 365,
) -> None:
    """Fill an empty database with realistic demo data (refused in prod)."""
    from pamtalk.api.db.seed import SeedSize

    size = SeedSize(farms=farms, transactions=transactions, days=days)
    _run(lambda s: _seed(s, only_if_empty=False, size=size))


@app.command()
def init() -> None:
    """Migrate the database, seed demo data if empty, register the admin API key."""

    async def work(settings: Settings) -> None:
        await _upgrade(settings)
        await _seed(settings, only_if_empty=True)
        await _bootstrap_admin(settings)

    _run(work)
    typer.echo("ready: run `pamtalk serve`")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from pamtalk import logs

    settings = Settings()
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Workers are separate processes: metrics must be shared through files.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pamtalk-metrics-")
    if workers > 1 and settings.is_sqlite and settings.redis_url is None:
        typer.echo(
            "note: with several workers and no Redis each worker caches on its own; "
            "set PAMTALK_REDIS_URL for a shared cache and sessions",
            err=True,
        )
    logs.configure(settings.log_level)
    uvicorn.run(
        "pamtalk.api.main:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    app()
