"""``pamtalk batch score|resume``: batch scoring on the Celery workers (``pamtalk worker``),
or in this process without a broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from pamtalk.cli.common import refuse
from pamtalk.errors import PamtalkError
from pamtalk.settings import Settings

if TYPE_CHECKING:  # the batching stack (MLflow, ONNX Runtime) loads only when a job runs
    from pamtalk.batching.context import BatchContext
    from pamtalk.db.models import BatchJob

app = typer.Typer(help="Batch scoring (Celery, or in-process without a broker).")


@app.command("score")
def score(
    run_date: Annotated[
        str | None, typer.Option("--date", help="run date, YYYY-MM-DD; default today (KST)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
) -> None:
    """Demand forecasts for every crop x region for the next 28 days and the ESG score of
    every active farm, at the champion versions of now. On the workers when
    PAMTALK_CELERY_BROKER_URL is set, else here (always waiting)."""
    from pamtalk.db.types import utcnow
    from pamtalk.domain import KST

    try:
        day = date.fromisoformat(run_date) if run_date else utcnow().astimezone(KST).date()
    except ValueError as exc:
        raise typer.BadParameter(f"--date must be YYYY-MM-DD, got {run_date!r}") from exc

    async def plan(ctx: BatchContext) -> int:
        job = await ctx.plan_nightly(day)
        typer.echo(f"job {job.id}: {job.chunks_total} chunks at {job.params['versions']}")
        return job.id

    _follow(plan, wait)


@app.command("resume")
def resume(
    job_id: Annotated[int, typer.Argument(help="the job's id (pamtalk batch score prints it)")],
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
) -> None:
    """Run a job's unfinished chunks again (lost by a broker or a cut-off process, or failed
    for a reason since fixed); the rows already written stay and are not duplicated."""

    async def reopen(ctx: BatchContext) -> int:
        chunks = await ctx.reopen(job_id)
        typer.echo(f"job {job_id}: {len(chunks)} chunks to run again")
        return job_id

    _follow(reopen, wait)


async def wait_for_end(
    ctx: BatchContext, job_id: int, advance: Callable[[BatchJob], None], every: float = 0.5
) -> BatchJob:
    """Poll the job until it has completed or failed. The database going away meanwhile (a
    restart, a failover) is waited out, said once each way: the job goes on on the workers,
    so following it does too (Ctrl-C stops following, never the job)."""
    from pamtalk.db.models import JobStatus
    from pamtalk.db.outage import database_unavailable

    down_since: float | None = None
    while True:
        try:
            job = await ctx.status(job_id)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            if down_since is None:
                down_since = time.monotonic()
                typer.echo(f"database unreachable ({type(exc).__name__}); still waiting", err=True)
            await asyncio.sleep(every)
            continue
        if down_since is not None:
            typer.echo(f"database back after {time.monotonic() - down_since:.1f} s", err=True)
            down_since = None
        advance(job)
        if job.status in (JobStatus.completed, JobStatus.failed):
            return job
        await asyncio.sleep(every)


def _follow(start: Callable[[BatchContext], Awaitable[int]], wait: bool) -> None:
    """Start a job (``start`` plans or reopens it), follow its progress with a bar, print
    the outcome; exit 1 if it failed."""
    from tqdm import tqdm

    from pamtalk.batching import jobs
    from pamtalk.batching.context import BatchContext
    from pamtalk.db.models import JobStatus

    async def run() -> dict[str, object]:
        ctx = BatchContext(Settings())
        try:
            job_id = await start(ctx)
            job = await ctx.status(job_id)
            bar = tqdm(total=job.chunks_total, initial=job.chunks_done, unit="chunk", disable=None)

            def advance(now: BatchJob) -> None:
                bar.update(now.chunks_done - bar.n)

            running = await ctx.launch(job_id, advance)
            if running is not None:
                job = await running
            elif not wait:
                bar.close()
                typer.echo(f"queued; follow it with `GET /v1/jobs/{job_id}` or --wait")
                return jobs.progress(job)
            else:
                job = await wait_for_end(ctx, job_id, advance)
            bar.close()
            return jobs.progress(job)
        finally:
            await ctx.close()

    try:
        result = asyncio.run(run())
    except PamtalkError as exc:
        refuse(exc)
    typer.echo(
        f"job {result['id']} {result['status']}: {result['chunks_done']}/{result['chunks_total']}"
        f" chunks, {result['rows_written']} rows, {result['rows_per_second'] or '-'} rows/s"
    )
    if result["status"] == JobStatus.failed:
        typer.echo(f"error: {result['error']}", err=True)
        raise typer.Exit(1)
