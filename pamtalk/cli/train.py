"""``pamtalk train demand|esg``: train, evaluate, export and register a model version."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from pamtalk import extras
from pamtalk.cli.common import TRAIN_DIR, refuse
from pamtalk.db import manage
from pamtalk.settings import Settings


def train(
    kind: Annotated[str, typer.Argument(help="demand or esg")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="demand: a CSV shaped like the Jeju data (default: ../shared's "
            "Jeju data when present, else generated data)"
        ),
    ] = None,
    from_db: Annotated[
        bool, typer.Option(help="demand: train on the platform's daily demand aggregate")
    ] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="override the epochs")] = None,
) -> None:
    """Train a model, evaluate it, export it to ONNX (fp32 + int8) and register a version."""
    from pamtalk.models.contract import KINDS
    from pamtalk.models.demand.data import from_daily_aggregate
    from pamtalk.registry import store

    try:
        with extras.needs("train", "pamtalk train"):
            from pamtalk.registry import publish
            from pamtalk.training.pipeline import Data, resolve_source
    except extras.MissingExtra as exc:
        refuse(exc, 2)

    if kind not in KINDS:
        raise typer.BadParameter(f"KIND must be {' or '.join(KINDS)}")
    settings = Settings()
    source: Data = data
    if from_db:
        frame = from_daily_aggregate(asyncio.run(manage.daily_demand(settings)))
        if frame.empty:
            raise typer.BadParameter(
                "the database has no transactions yet (pamtalk db seed)", param_hint="--from-db"
            )
        source = frame
    try:
        source, described = resolve_source(kind, source)
    except ValueError as exc:
        hint = "--from-db" if from_db else "--data"
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    typer.echo(f"training {kind} on {described} ...")
    built, version = publish.train_and_register(
        store.connect(settings),
        settings,
        kind,
        out_dir=TRAIN_DIR / kind,
        data=source,
        epochs=epochs,
    )
    typer.echo(built.table)
    typer.echo(built.report)
    name = built.contract.registered_name
    typer.echo(
        f"registered {name} version {version}; promote it with "
        f"`pamtalk models promote {name} {version}`"
    )
