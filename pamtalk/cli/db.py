"""``pamtalk init`` and ``pamtalk db upgrade|seed``: the database and first-run defaults."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from pamtalk import extras
from pamtalk.api import auth
from pamtalk.cache import create_cache
from pamtalk.cli.common import TRAIN_DIR
from pamtalk.db import manage
from pamtalk.db.seed import ADMIN_EMAIL, DEMO_PASSWORD, Rotation, SeedSize
from pamtalk.errors import Conflict, Forbidden
from pamtalk.ledger import ops
from pamtalk.settings import Settings

app = typer.Typer(help="Database schema and demo data.", no_args_is_help=True)


def _seed(settings: Settings, size: SeedSize) -> None:
    typer.echo("[database] seeding demo data ...")
    started = time.monotonic()
    counts = asyncio.run(ops.seed_database(settings, size))
    typer.echo(
        "[database] seeded "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
        + f" in {time.monotonic() - started:.0f} s"
    )
    typer.echo(
        f"demo logins: {ADMIN_EMAIL}, farmer1@pamtalk.local, buyer1@pamtalk.local, "
        f"analyst1@pamtalk.local; password '{DEMO_PASSWORD}'"
    )


def _report_rotation(settings: Settings, rotation: Rotation) -> None:
    if rotation.added:
        typer.echo("admin API key from PAMTALK_ADMIN_API_KEY registered")
    if not rotation.usable:
        typer.echo(
            "PAMTALK_ADMIN_API_KEY was revoked earlier and stays revoked; set a new one "
            "(openssl rand -hex 32)",
            err=True,
        )
    if rotation.revoked:
        asyncio.run(_forget_keys(settings, rotation.revoked))
        typer.echo(f"{len(rotation.revoked)} earlier bootstrap key(s) revoked")


async def _forget_keys(settings: Settings, key_hashes: list[str]) -> None:
    """Evict revoked keys from a shared cache (Redis), where servers keep resolved keys."""
    cache = create_cache(settings.redis_url)
    try:
        for key_hash in key_hashes:
            await auth.forget_api_key(cache, key_hash)
    finally:
        await cache.close()


@app.command("upgrade")
def upgrade() -> None:
    """Apply database migrations up to the latest."""
    asyncio.run(manage.upgrade_database(Settings()))
    typer.echo("database is at the latest migration")


@app.command("seed")
def seed(
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


def init(
    models: Annotated[bool, typer.Option(help="train and promote default models if none")] = True,
    full: Annotated[
        bool,
        typer.Option(
            help="train the default models with the full config (minutes on 2 cores) instead "
            "of the small first-run one (seconds)"
        ),
    ] = False,
) -> None:
    """Migrate the database, seed demo data if it is empty (or start the ledger on one from
    before it), register the admin API key, and train + register + promote default models
    when the registry has no champion: a small first-run config, in seconds; `pamtalk train`
    trains the full one. Each stage says what it does, [database] then [models]."""
    started = time.monotonic()
    settings = Settings()
    typer.echo("[database] migrating ...")
    asyncio.run(manage.upgrade_database(settings))
    typer.echo("[database] at the latest migration")
    try:
        _seed(settings, SeedSize())
    except (Forbidden, Conflict) as exc:
        typer.echo(f"[database] not seeding: {exc.message}")
    if ledgered := asyncio.run(ops.backfill(settings, only_if_empty=True)):
        typer.echo(f"[database] ledger started: {ledgered} existing transactions ledgered")
    if rotation := asyncio.run(manage.register_admin_key(settings)):
        _report_rotation(settings, rotation)
    if models:
        _default_models(settings, full)
    typer.echo(f"init done in {time.monotonic() - started:.0f} s")


def _default_models(settings: Settings, full: bool) -> None:
    from pamtalk.registry import defaults, store

    def say(line: str) -> None:
        typer.echo(f"[models] {line}")

    client = store.connect(settings)
    try:
        if not defaults.ensure_champions(client, settings, TRAIN_DIR, say=say, first_run=not full):
            say("every model has a champion")
    except extras.MissingExtra as exc:
        typer.echo(f"refused: {exc.message}; or skip them: pamtalk init --no-models", err=True)
        raise typer.Exit(2) from exc
