"""``pamtalk models list|promote|rollback|canary|rollout|rollouts``: the model registry
(MLflow). Changes are recorded in the audit trail (``model_events``) as ``cli:<user>``."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pamtalk.cli.common import refuse
from pamtalk.errors import PamtalkError
from pamtalk.settings import Settings

if TYPE_CHECKING:  # MLflow loads only when a command runs
    from mlflow import MlflowClient

    from pamtalk.db.session import SessionFactory

app = typer.Typer(
    help="The model registry (MLflow): list, promote, roll back, canary, rollouts.",
    no_args_is_help=True,
)
T = TypeVar("T")
Name = Annotated[str, typer.Argument(help="registered model name, e.g. pamtalk-esg")]
Version = Annotated[str, typer.Argument(help="a registered version of it, e.g. 4")]
Reason = Annotated[str | None, typer.Option(help="why, for the audit trail")]


def _run(work: Callable[[MlflowClient, SessionFactory, str], Awaitable[T]]) -> T:
    """Run ``work(client, sessions, actor)`` against this machine's registry and database;
    a refusal is reported and exits 1. The database must be migrated: it keeps the audit
    trail of every change (exit 2 otherwise)."""
    from pamtalk.db.migrate import current_revision, head_revision
    from pamtalk.db.session import create_engine, create_session_factory
    from pamtalk.notify import outbox
    from pamtalk.registry import events, store

    settings = Settings()

    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                at = await connection.run_sync(current_revision)
            if at != head_revision():
                typer.echo(
                    "the database is not migrated (it records model changes): run "
                    "`pamtalk db upgrade` or `pamtalk init` first",
                    err=True,
                )
                raise typer.Exit(2)
            actor = f"cli:{getpass.getuser()}"
            sessions = create_session_factory(engine)
            notify = outbox.model_event_subscriber(sessions)  # promotions, rollbacks notified
            events.subscribe(notify)
            try:
                return await work(store.connect(settings), sessions, actor)
            finally:
                events.unsubscribe(notify)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except PamtalkError as exc:
        refuse(exc)


@app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Argument(help="one model (default: all)")] = None,
) -> None:
    """Registered versions with their aliases, main metric and the canary's share."""
    from pamtalk.models.contract import CONTRACTS
    from pamtalk.registry import promote, store

    client = store.connect(Settings())
    rows = promote.list_versions(client, name)
    if not rows:
        typer.echo("no registered models yet: run `pamtalk train demand` or `pamtalk init`")
        return
    typer.echo(f"{'MODEL':16} {'VERSION':8} {'ALIASES':22} {'METRIC':>22}  INT8  TRAFFIC")
    plans = {n: promote.rollout(client, n) for n in {row.name for row in rows}}
    for row in rows:
        metric_name = CONTRACTS[row.name].main_metric
        metric = f"{metric_name} {row.metric:.4f}" if row.metric is not None else "-"
        plan = plans[row.name]
        share = (
            f"{plan.percent} % ({plan.mode})"
            if row.version == plan.challenger
            else f"{100 - plan.percent if plan.mode == 'split' else 100} %"
            if row.version == plan.champion
            else ""
        )
        typer.echo(
            f"{row.name:16} v{row.version:<7} {','.join(row.aliases) or '-':22} "
            f"{metric:>22}  {'yes' if row.int8 else 'no':4}  {share}"
        )


@app.command("promote")
def promote_version(name: Name, version: Version, reason: Reason = None) -> None:
    """Move the champion alias to VERSION once the validation gates pass."""
    from pamtalk.registry import actions

    _run(lambda c, s, a: actions.promote_version(c, s, name, version, a, reason))
    typer.echo(f"{name} version {version} is now champion")


@app.command("rollback")
def rollback(name: Name, reason: Reason = None) -> None:
    """Move the champion alias back to the previous champion."""
    from pamtalk.registry import actions

    event = _run(lambda c, s, a: actions.rollback(c, s, name, a, reason))
    typer.echo(f"{name} champion is back to version {event.to_version}")


@app.command("canary")
def canary(
    name: Name,
    version: Annotated[str | None, typer.Argument(help="the challenger; omit with --off")] = None,
    percent: Annotated[int, typer.Option(min=0, max=100, help="share of traffic")] = 5,
    shadow: Annotated[
        bool, typer.Option(help="the challenger scores a copy; the champion still answers")
    ] = False,
    off: Annotated[bool, typer.Option(help="end the canary: the champion takes it all")] = False,
    reason: Reason = None,
) -> None:
    """Route PERCENT % of traffic (sticky per caller) to VERSION as the challenger; `pamtalk
    models rollout` steps it up by itself, judged on live figures."""
    from pamtalk.registry import actions

    if off:
        _run(lambda c, s, a: actions.end_canary(c, s, name, a, reason))
        typer.echo(f"{name}: canary ended; the champion answers everything")
        return
    if version is None:
        raise typer.BadParameter("give the VERSION to try, or --off")
    _run(lambda c, s, a: actions.canary(c, s, name, version, percent, shadow, a, reason))
    mode = "shadows" if shadow else "answers"
    typer.echo(f"{name} version {version} is challenger and {mode} {percent} % of requests")


@app.command("rollout")
def rollout(
    name: Name,
    version: Version,
    steps: Annotated[str, typer.Option(help="comma-separated shares of traffic")] = "5,25,50,100",
    step_seconds: Annotated[float, typer.Option(min=0.1, help="least time per step")] = 600,
    min_requests: Annotated[
        int, typer.Option(min=1, help="least challenger requests a step")
    ] = 200,
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="most challenger failures per request")
    ] = 0.001,
    max_p99_ratio: Annotated[float, typer.Option(min=0.01, help="challenger/champion p99")] = 1.2,
    max_shadow_divergence: Annotated[
        float | None, typer.Option(min=0, help="most mean |challenger - champion| (--shadow)")
    ] = None,
    shadow: Annotated[bool, typer.Option(help="each step shadows instead of answering")] = False,
) -> None:
    """Start an automatic progressive rollout of VERSION: each step's share of traffic until
    its time is up and it served enough requests with every gate holding; a failing gate rolls
    back at once; the last step promotes. The running API processes drive it; follow it with
    `pamtalk models rollouts NAME` or GET /v1/models/NAME/rollouts/ID."""
    from pamtalk.registry import rollouts

    try:
        shares = [int(part) for part in steps.split(",")]
    except ValueError as exc:
        raise typer.BadParameter(
            f"--steps must be numbers like 5,25,50,100, got {steps!r}"
        ) from exc
    plan = rollouts.Plan(
        steps=shares,
        step_seconds=step_seconds,
        min_requests=min_requests,
        gates=rollouts.Gates(max_error_rate, max_p99_ratio, max_shadow_divergence),
        shadow=shadow,
    )
    started = _run(lambda c, s, a: rollouts.start(c, s, name, version, plan, a))
    typer.echo(f"rollout {started.id}: {name} version {version} at {shares[0]} % ({steps} %)")


@app.command("rollouts")
def rollouts_list(name: Name) -> None:
    """The model's rollouts, newest first: state, step and the last gate readings."""
    from pamtalk.registry import rollouts

    async def listed(_: Any, sessions: SessionFactory, __: str) -> list[Any]:
        return await rollouts.listed(sessions, name)

    for r in _run(listed):
        last = r.readings[-1].get("gates", {}) if r.readings else {}
        typer.echo(
            f"{r.id:>4}  v{r.version:<4} {r.state:<12} step {r.step + 1}/{len(r.steps)} "
            f"({r.steps[r.step]} %)  challenger requests "
            f"{int(last.get('challenger_requests', 0))}  {r.reason or ''}"
        )
