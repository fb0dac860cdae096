"""What every command group shares: how a refusal is reported, and where training writes."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from pamtalk.errors import PamtalkError

TRAIN_DIR = Path("var/train")


def refuse(exc: PamtalkError, code: int = 1) -> NoReturn:
    """Say why the command was refused, on stderr, and exit with ``code``."""
    typer.echo(f"refused: {exc.message}", err=True)
    raise typer.Exit(code) from exc
