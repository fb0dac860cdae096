"""The ``pamtalk`` command. Thin: parses arguments, then calls into the packages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pamtalk.db import manage
from pamtalk.db.seed import ADMIN_EMAIL, DEMO_PASSWORD, SeedSize
from pamtalk.errors import Conflict, Forbidden, PamtalkError
from pamtalk.settings import Settings

app = typer.Typer(help="PAM-TALK serving: API, models, batch scoring.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
models_app = typer.Typer(
    help="The model registry (MLflow): list, promote, roll back.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

TRAIN_DIR = Path("var/train")


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
def init(
    models: Annotated[bool, typer.Option(help="train and promote default models if none")] = True,
) -> None:
    """Migrate the database, seed demo data if it is empty, register the admin API key, and
    train + register + promote default models when the registry has no champion."""
    settings = Settings()
    asyncio.run(manage.upgrade_database(settings))
    typer.echo("database is at the latest migration")
    try:
        _seed(settings, SeedSize())
    except (Forbidden, Conflict) as exc:
        typer.echo(f"not seeding: {exc.message}")
    if asyncio.run(manage.register_admin_key(settings)):
        typer.echo("admin API key from PAMTALK_ADMIN_API_KEY registered")
    if models:
        from pamtalk.registry import defaults, store

        client = store.connect(settings)
        if not defaults.ensure_champions(client, settings, TRAIN_DIR, say=typer.echo):
            typer.echo("models: every model has a champion")
    typer.echo("ready: run `pamtalk serve`")


@app.command()
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


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument()] = None) -> None:
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


@models_app.command("promote")
def models_promote(name: str, version: str) -> None:
    """Move the champion alias to VERSION once the validation gates pass."""
    from pamtalk.registry import promote, store

    try:
        promote.promote(store.connect(Settings()), name, version)
    except PamtalkError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{name} version {version} is now champion")


@models_app.command("rollback")
def models_rollback(name: str) -> None:
    """Move the champion alias back to the previous champion."""
    from pamtalk.registry import promote, store

    try:
        version = promote.rollback(store.connect(Settings()), name)
    except PamtalkError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{name} champion is back to version {version}")


@models_app.command("canary")
def models_canary(
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
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    mode = "shadows" if shadow else "answers"
    typer.echo(f"{name} version {version} is challenger and {mode} {percent} % of requests")


gpu_app = typer.Typer(help="GPU and execution providers.", no_args_is_help=True)
app.add_typer(gpu_app, name="gpu")


@gpu_app.command("info")
def gpu_info() -> None:
    """What ONNX Runtime and PyTorch see, and the providers PAMTALK_DEVICE gives a model."""
    from pamtalk.gpu.info import describe

    report = describe(Settings().device)
    for key, value in report.items():
        typer.echo(f"{key:20} {value}")


@app.command()
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
    from pamtalk.serving import ray_backend  # Ray is heavy: only when asked

    try:
        apps = ray_backend.scale(Settings(), model, replicas)
    except PamtalkError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    for name in apps:
        typer.echo(f"{name}: {replicas} replica{'s' if replicas > 1 else ''}")


batch_app = typer.Typer(help="Batch scoring (Celery, or in-process without a broker).")
app.add_typer(batch_app, name="batch", no_args_is_help=True)


@batch_app.command("score")
def batch_score(
    run_date: Annotated[
        str | None, typer.Option("--date", help="run date, YYYY-MM-DD; default today (KST)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
) -> None:
    """Demand forecasts for every crop x region for the next 28 days and the ESG score of
    every active farm, at the champion versions of now. On the workers when
    PAMTALK_CELERY_BROKER_URL is set, else here (always waiting)."""
    from datetime import date

    from pamtalk.batching import runner
    from pamtalk.db.types import utcnow
    from pamtalk.domain import KST

    try:
        day = date.fromisoformat(run_date) if run_date else utcnow().astimezone(KST).date()
    except ValueError as exc:
        raise typer.BadParameter(f"--date must be YYYY-MM-DD, got {run_date!r}") from exc

    async def plan(ctx: runner.BatchContext) -> tuple[int, list[tuple[int, str]]]:
        job = await runner.plan_nightly(ctx, day)
        typer.echo(f"job {job.id}: {job.chunks_total} chunks at {job.params['versions']}")
        return job.id, await runner.chunk_kinds(ctx, job.id)

    _drive_job(plan, wait)


@batch_app.command("resume")
def batch_resume(
    job_id: int,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
) -> None:
    """Run a job's unfinished chunks again (lost by a broker or a cut-off process, or failed
    for a reason since fixed); the rows already written stay and are not duplicated."""
    from pamtalk.batching import runner

    async def reopen(ctx: runner.BatchContext) -> tuple[int, list[tuple[int, str]]]:
        chunks = await runner.reopen(ctx, job_id)
        typer.echo(f"job {job_id}: {len(chunks)} chunks to run again")
        return job_id, chunks

    _drive_job(reopen, wait)


def _drive_job(
    start: Callable[[Any], Awaitable[tuple[int, list[tuple[int, str]]]]], wait: bool
) -> None:
    """Start a job's chunks on the workers (or here, without a broker), follow its progress
    with a bar, print the outcome; exit 1 if it failed."""
    from tqdm import tqdm

    from pamtalk.batching import jobs, runner
    from pamtalk.db.models import BatchJob, JobStatus

    settings = Settings()

    async def run() -> dict[str, object]:
        ctx = runner.BatchContext(settings)
        try:
            job_id, chunks = await start(ctx)
            job = await runner.status(ctx, job_id)
            bar = tqdm(total=job.chunks_total, initial=job.chunks_done, unit="chunk", disable=None)

            def advance(now: BatchJob) -> None:
                bar.update(now.chunks_done - bar.n)

            if settings.celery_broker_url is None:
                job = await runner.run_inline(ctx, job_id, advance)
            else:
                from pamtalk.batching.celery_app import app as celery
                from pamtalk.batching.celery_app import dispatch

                dispatch(celery, job_id, chunks)
                if not wait:
                    bar.close()
                    typer.echo(f"queued; follow it with `GET /v1/jobs/{job_id}` or --wait")
                    return jobs.progress(job)
                while job.status not in (JobStatus.completed, JobStatus.failed):
                    await asyncio.sleep(0.5)
                    job = await runner.status(ctx, job_id)
                    advance(job)
            bar.close()
            return jobs.progress(job)
        finally:
            await ctx.close()

    try:
        result = asyncio.run(run())
    except PamtalkError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"job {result['id']} {result['status']}: {result['chunks_done']}/{result['chunks_total']}"
        f" chunks, {result['rows_written']} rows, {result['rows_per_second'] or '-'} rows/s"
    )
    if result["status"] == JobStatus.failed:
        typer.echo(f"error: {result['error']}", err=True)
        raise typer.Exit(1)


def _celery_argv(kind: str, loglevel: str) -> list[str]:
    if Settings().celery_broker_url is None:
        typer.echo("set PAMTALK_CELERY_BROKER_URL (amqp://... or redis://...) first", err=True)
        raise typer.Exit(2)
    return [kind, "--loglevel", loglevel]


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    queues: Annotated[str, typer.Option(help="comma-separated")] = (
        "prediction_requests,analytics_data,notification_events"
    ),
    loglevel: str = "INFO",
) -> None:
    """A Celery worker for batch chunks and background jobs."""
    from pamtalk.batching.celery_app import app as celery

    argv = [*_celery_argv("worker", loglevel), "-Q", queues, "--concurrency", str(concurrency)]
    celery.worker_main(argv)


@app.command()
def beat(loglevel: str = "INFO") -> None:
    """The Celery beat scheduler: nightly scoring at 02:00 Asia/Seoul."""
    from pamtalk.batching.celery_app import app as celery

    schedule = Path("var/celerybeat-schedule")
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery.start([*_celery_argv("beat", loglevel), "--schedule", str(schedule)])


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


@app.command()
def loadtest(
    scenario: Annotated[str, typer.Option(help="basic, peak or spike")],
    users: Annotated[
        int | None, typer.Option(min=1, help="simulated users (basic 1000, peak 5000, spike 10000)")
    ] = None,
    rps: Annotated[
        float | None, typer.Option(min=0.01, help="target req/s (basic 20, peak 100, spike 500)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1, help="seconds in all, ramp included")
    ] = None,
    ramp: Annotated[float | None, typer.Option(min=0, help="seconds to full load")] = None,
    target: Annotated[str, typer.Option(help="the server's base URL")] = "http://127.0.0.1:8000",
    report: Annotated[
        Path | None, typer.Option(help="report folder (default var/loadtest/SCENARIO)")
    ] = None,
    greenlets: Annotated[
        int | None,
        typer.Option(min=1, help="Locust users carrying the load (default: one per req/s)"),
    ] = None,
    arrivals: Annotated[
        str, typer.Option(help="paced (fixed gaps, random phase) or poisson (bursty)")
    ] = "paced",
    identities: Annotated[
        int, typer.Option(min=1, help="demo buyers and farmers to send as (API keys)")
    ] = 20,
    slo: Annotated[
        Path | None, typer.Option(help="TOML file overriding the SLOs ([seed], [ours.SCENARIO])")
    ] = None,
    password: Annotated[str, typer.Option(help="the demo users' password")] = DEMO_PASSWORD,
) -> None:
    """The seed's load test on Locust (headless): the 70/20/10 read/write/AI mix as demo
    buyers and farmers, judged against the seed's SLOs and ours. Writes summary.json,
    latency.png and Locust's HTML report; exits 0 when every SLO passed, 1 when one failed."""
    from pamtalk.loadtest import run as loadtest_run  # Locust itself runs in a subprocess
    from pamtalk.loadtest.prepare import SetupError

    options = loadtest_run.Options(
        scenario=scenario,
        target=target.rstrip("/"),
        report_dir=report or Path("var/loadtest") / scenario,
        users=users,
        rps=rps,
        duration=duration,
        ramp=ramp,
        greenlets=greenlets,
        arrivals=arrivals,
        identities=identities,
        password=password,
        slo_file=slo,
    )
    try:
        code = loadtest_run.run(options, say=typer.echo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except (SetupError, RuntimeError) as exc:
        typer.echo(f"load test could not run: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
