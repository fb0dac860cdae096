"""The ``pamtalk`` command. Thin: parses arguments, then calls into the packages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import Annotated

import typer

from pamtalk.api.db import manage
from pamtalk.api.db.seed import ADMIN_EMAIL, DEMO_PASSWORD, SeedSize
from pamtalk.errors import Conflict, Forbidden
from pamtalk.settings import Settings

app = typer.Typer(help="PAM-TALK serving: API, models, batch scoring.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _seed(settings: Settings, size: SeedSize) -> None:
    typer.echo("seeding demo data ...")
    counts = asyncio.run(manage.seed_database(settings, size))
    typer.echo("seeded " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    typer.echo(
        f"demo logins: {ADMIN_EMAIL}, farmer1@pamtalk.local, buyer1@pamtalk.local, "
        f"analyst1@pamtalk.local; password '{DEMO_PASSWORD}'"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest."""
    asyncio.run(manage.upgrade_database(Settings()))
    typer.echo("database is at the latest migration")


@db_app.command("seed")
def db_seed(
    farms: Annotated[int, typer.Option(min=1, help="number of farms")] = 300,
    transactions: Annotated[int, typer.Option(min=0, help="number of transactions")] = 60_000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="days of history")] = 365,
) -> None:
    """Fill an empty database with realistic demo data (refused in prod)."""
    try:
        _seed(Settings(), SeedSize(farms=farms, transactions=transactions, days=days))
    except Forbidden as exc:
        typer.echo(f"not seeding: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except Conflict as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc


@app.command()
def init() -> None:
    """Migrate the database, seed demo data if it is empty, register the admin API key."""
    settings = Settings()
    asyncio.run(manage.upgrade_database(settings))
    typer.echo("database is at the latest migration")
    try:
        _seed(settings, SeedSize())
    except (Forbidden, Conflict) as exc:
        typer.echo(f"not seeding: {exc.message}")
    if asyncio.run(manage.register_admin_key(settings)):
        typer.echo("admin API key from PAMTALK_ADMIN_API_KEY registered")
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
    if workers > 1 and settings.redis_url is None:
        typer.echo(
            "note: without PAMTALK_REDIS_URL each worker has its own cache and sessions; "
            "a session token works only on the worker that issued it",
            err=True,
        )
    logs.configure(settings.log_level)
    with contextlib.ExitStack() as stack:
        if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # Workers are separate processes: metrics are shared through files, kept for
            # the server's lifetime only.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pamtalk-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
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
