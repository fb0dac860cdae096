"""``pamtalk train demand|esg``: train, evaluate, export and register a model version."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from pamtalk.cli.common import TRAIN_DIR
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
    import pandas as pd

    from pamtalk.models.demand.data import from_daily_aggregate
    from pamtalk.registry import publish, store
    from pamtalk.training.pipeline import JEJU

    if kind not in ("demand", "esg"):
        raise typer.BadParameter("KIND must be demand or esg")
    settings = Settings()
    source: Path | pd.DataFrame | None = data
    if data is not None and not data.exists():
        raise typer.BadParameter(f"{data} does not exist", param_hint="--data")
    if from_db:
        frame = from_daily_aggregate(asyncio.run(manage.daily_demand(settings)))
        if frame.empty:
            raise typer.BadParameter(
                "the database has no transactions yet (pamtalk db seed)", param_hint="--from-db"
            )
        source = frame
        described = f"the platform's daily demand ({frame['series'].nunique()} series)"
    else:
        if kind == "demand" and data is None and JEJU.exists():
            source = JEJU
        described = str(source) if source is not None else "generated data"
    typer.echo(f"training {kind} on {described} ...")
    built, version = publish.train_and_register(
        store.connect(settings),
        settings,
        "demand" if kind == "demand" else "esg",
        out_dir=TRAIN_DIR / kind,
        data=source,
        epochs=epochs,
    )
    typer.echo(built.table)
    typer.echo(built.report)
    typer.echo(
        f"registered {built.contract.registered_name} version {version}; promote it "
        f"with `pamtalk models promote {built.contract.registered_name} {version}`"
    )
