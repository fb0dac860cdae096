"""``pamtalk gpu info``: execution providers and the device a model gets."""

from __future__ import annotations

import typer

from pamtalk.settings import Settings

app = typer.Typer(help="GPU and execution providers.", no_args_is_help=True)


@app.command("info")
def info() -> None:
    """What ONNX Runtime and PyTorch see, and the providers PAMTALK_DEVICE gives a model."""
    from pamtalk.gpu.info import describe

    report = describe(Settings().device)
    for key, value in report.items():
        typer.echo(f"{key:20} {value}")
