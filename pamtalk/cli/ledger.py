"""``pamtalk ledger verify|verify-proof|anchor|backfill``: the tamper-evident ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from pamtalk.ledger import ops, proof
from pamtalk.settings import Settings

app = typer.Typer(help="The tamper-evident transaction ledger.", no_args_is_help=True)


@app.command("verify")
def verify(
    start: Annotated[
        int, typer.Option("--from", min=1, help="start at this entry (its anchor's first)")
    ] = 1,
) -> None:
    """Recompute the hash chain and the anchors from the database; exit 1 naming the first
    bad entry (a transaction altered; an entry deleted, inserted or reordered)."""
    report = asyncio.run(ops.check(Settings(), start))
    checked = f"entries {report.start}..{report.start + report.entries - 1}"
    if not report.ok:
        typer.echo(f"ledger broken: {report.problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ledger ok: {checked} and {report.anchors} anchor(s)")


@app.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a saved proof")],
) -> None:
    """Check a proof from GET /v1/ledger/transactions/{id}/proof offline (no database)."""
    try:
        checked = proof.check(file.read_bytes())
    except proof.InvalidProof as exc:
        typer.echo(f"proof does not hold: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"proof holds: transaction {checked.transaction_id} is entry {checked.position} "
        f"under anchor root {checked.root}"
    )
    if checked.receipt is None:
        typer.echo("the anchor has no receipt yet (not submitted to its sink)")
    else:
        typer.echo(f"receipt of sink {checked.receipt['sink']!r} checked")


@app.command("anchor")
def anchor(
    force: Annotated[bool, typer.Option(help="seal the pending entries even if not due")] = False,
) -> None:
    """Seal the pending entries if an anchor is due (or now, with --force), and submit
    anchors without a receipt: here, or through the blockchain_transactions queue when
    PAMTALK_CELERY_BROKER_URL is set (the API does both on time by itself)."""
    settings = Settings()
    sealed, submitted = asyncio.run(ops.anchor(settings, force))
    typer.echo(f"sealed anchor {sealed}" if sealed else "no anchor due")
    if settings.celery_broker_url is None:
        typer.echo(f"submitted {submitted} anchor(s)")
    else:
        typer.echo(f"sent {submitted} anchor(s) to the blockchain_transactions queue")


@app.command("backfill")
def backfill() -> None:
    """Ledger the transactions that have no entry: once, after upgrading a database that has
    transactions from before the ledger (otherwise verify reports them as inserted)."""
    typer.echo(f"ledgered {asyncio.run(ops.backfill(Settings()))} transaction(s)")
