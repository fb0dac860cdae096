"""``pamtalk models list|promote|rollback|canary``: the model registry (MLflow)."""

from __future__ import annotations

from typing import Annotated

import typer

from pamtalk.cli.common import refuse
from pamtalk.errors import PamtalkError
from pamtalk.settings import Settings

app = typer.Typer(
    help="The model registry (MLflow): list, promote, roll back.", no_args_is_help=True
)


@app.command("list")
def list_versions(name: Annotated[str | None, typer.Argument()] = None) -> None:
    """Registered versions with their aliases and main metric."""
    from pamtalk.registry import promote, store

    rows = promote.list_versions(store.connect(Settings()), name)
    if not rows:
        typer.echo("no registered models yet: run `pamtalk train demand` or `pamtalk init`")
    for row in rows:
        metric = f"{row.metric:.4f}" if row.metric is not None else "-"
        typer.echo(
            f"{row.name:16} v{row.version:<4} {','.join(row.aliases) or '-':22} "
            f"{metric:>9}  int8={'yes' if row.int8 else 'no'}"
        )


@app.command("promote")
def promote_version(name: str, version: str) -> None:
    """Move the champion alias to VERSION once the validation gates pass."""
    from pamtalk.registry import promote, store

    try:
        promote.promote(store.connect(Settings()), name, version)
    except PamtalkError as exc:
        refuse(exc)
    typer.echo(f"{name} version {version} is now champion")


@app.command("rollback")
def rollback(name: str) -> None:
    """Move the champion alias back to the previous champion."""
    from pamtalk.registry import promote, store

    try:
        version = promote.rollback(store.connect(Settings()), name)
    except PamtalkError as exc:
        refuse(exc)
    typer.echo(f"{name} champion is back to version {version}")


@app.command("canary")
def canary(
    name: str,
    version: Annotated[str | None, typer.Argument(help="the challenger; omit with --off")] = None,
    percent: Annotated[int, typer.Option(min=0, max=100, help="share of traffic")] = 5,
    shadow: Annotated[
        bool, typer.Option(help="the challenger scores a copy; the champion still answers")
    ] = False,
    off: Annotated[bool, typer.Option(help="end the canary: the champion takes it all")] = False,
) -> None:
    """Route PERCENT % of traffic (sticky per caller) to VERSION as the challenger: the
    5 -> 25 -> 50 -> 100 % rollout ends with `pamtalk models promote NAME VERSION`."""
    from pamtalk.registry import promote, store

    client = store.connect(Settings())
    try:
        if off:
            promote.end_canary(client, name)
            typer.echo(f"{name}: canary ended; the champion answers everything")
            return
        if version is None:
            raise typer.BadParameter("give the VERSION to try, or --off")
        promote.canary(client, name, version, percent, shadow=shadow)
    except PamtalkError as exc:
        refuse(exc)
    mode = "shadows" if shadow else "answers"
    typer.echo(f"{name} version {version} is challenger and {mode} {percent} % of requests")
