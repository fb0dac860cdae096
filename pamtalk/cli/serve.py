"""``pamtalk serve`` (the HTTP API on uvicorn) and ``pamtalk scale`` (Ray Serve replicas)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from pamtalk import extras, tracing
from pamtalk.cli.common import refuse
from pamtalk.errors import PamtalkError
from pamtalk.settings import Settings


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's handling of ``X-Forwarded-For``: believed only from PAMTALK_TRUSTED_PROXIES.
    With none (the default) it is ignored, whoever sends it: a client that could name its own
    address would reset the per-address login and rate limits at will."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def missing_extras(settings: Settings) -> None:
    """Raise MissingExtra when the settings ask for a feature that is not installed, before
    any worker starts (each would fail on its own, later and less clearly)."""
    if settings.serving_backend == "ray":
        extras.require("ray", "PAMTALK_SERVING_BACKEND=ray")
    if settings.celery_broker_url is not None:
        extras.require("batch", "PAMTALK_CELERY_BROKER_URL (tasks sent through Celery)")
    if tracing.requested():
        extras.require("tracing", "OTEL_EXPORTER_OTLP_ENDPOINT (traces)")


def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (and, with PAMTALK_METRICS_PORT, /metrics on that
    port only). PAMTALK_ENV=prod refuses an unsafe setup, saying what to change."""
    import uvicorn

    from pamtalk import logs
    from pamtalk.api import metrics

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = f"PAMTALK_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            typer.echo(field + error["msg"].removeprefix("Value error, "), err=True)
        raise typer.Exit(2) from None
    try:
        missing_extras(settings)
    except extras.MissingExtra as exc:
        refuse(exc, 2)
    if settings.metrics_port == port:
        typer.echo("refusing to start: PAMTALK_METRICS_PORT must differ from --port", err=True)
        raise typer.Exit(2)
    if settings.env == "prod":
        from pamtalk.api import prod

        try:
            asyncio.run(prod.check_database(settings))
        except prod.UnsafeProdSetup as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    if settings.metrics_port is None and settings.env == "prod":
        typer.echo(
            "note: prod serves /metrics only on PAMTALK_METRICS_PORT, which is unset: "
            "no metrics are served",
            err=True,
        )
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
        if settings.metrics_port is not None:
            metrics.serve_on_port(settings.metrics_port, host)
        uvicorn.run(
            "pamtalk.api.main:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            **proxy_options(settings),
        )


def scale(
    model: Annotated[str, typer.Argument(help="registered model name, e.g. pamtalk-esg")],
    replicas: Annotated[int, typer.Option(min=1, help="replicas for each served version")],
) -> None:
    """Pin a model's Ray Serve replicas to N, live, without restarting them
    (PAMTALK_SERVING_BACKEND=ray; the cluster is RAY_ADDRESS's, else the local one). This
    turns its autoscaling off; a new version of the model starts with the same count."""
    from pamtalk.models.contract import CONTRACTS

    if model not in CONTRACTS:
        raise typer.BadParameter(
            f"unknown model {model!r}; models: {', '.join(CONTRACTS)}", param_hint="MODEL"
        )
    try:
        with extras.needs("ray", "pamtalk scale"):
            from pamtalk.serving import ray_backend  # Ray is heavy: only when asked
    except extras.MissingExtra as exc:
        refuse(exc, 2)
    try:
        apps = ray_backend.scale(model, replicas)
    except PamtalkError as exc:
        refuse(exc)
    for name in apps:
        typer.echo(f"{name}: {replicas} replica{'s' if replicas > 1 else ''}")
