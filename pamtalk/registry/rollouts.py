"""Automatic progressive rollout: the challenger takes 5 -> 25 -> 50 -> 100 % of traffic (or
shadows it), each step judged on live figures of both versions on the same traffic, summed
over every API worker (serving/live.py); a failing gate rolls back at once, the last step
promotes.

    rollout = await start(client, sessions, "pamtalk-esg", "4", Plan(...), actor="user:7")
    await tick(client, sessions)     # every few seconds, in every API worker: safe together

State lives in the ``rollouts`` table. Every transition is a conditional update on (state,
step), so two drivers never both take one, and a restarted process carries on where the
table says. The registry's aliases are the premise: if someone moves them by hand (the
MLflow UI), the rollout stops, saying so.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from mlflow import MlflowClient
from sqlalchemy import select, update

from pamtalk.db.models import Rollout, RolloutState
from pamtalk.db.session import SessionFactory
from pamtalk.db.types import utcnow
from pamtalk.errors import BadRequest, Conflict, NotFound, PamtalkError
from pamtalk.registry import actions, events, promote
from pamtalk.serving import live

log = logging.getLogger(__name__)

ACTIVE = (RolloutState.running, RolloutState.paused)


@dataclass(frozen=True)
class Gates:
    max_error_rate: float = 0.001  # challenger's failed requests / its requests
    max_p99_ratio: float = 1.2  # challenger p99 latency / champion p99 on the same traffic
    max_shadow_divergence: float | None = None  # mean |challenger - champion| (shadow mode)


@dataclass(frozen=True)
class Plan:
    steps: list[int] = field(default_factory=lambda: [5, 25, 50, 100])
    step_seconds: float = 600.0
    min_requests: int = 200
    gates: Gates = Gates()
    shadow: bool = False

    def check(self) -> None:
        steps = self.steps
        if not steps or any(not 1 <= p <= 100 for p in steps):
            raise BadRequest("steps must be percentages from 1 to 100")
        if any(a >= b for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
            raise BadRequest("steps must rise and end at 100, e.g. [5, 25, 50, 100]")
        if self.step_seconds <= 0 or self.min_requests < 1:
            raise BadRequest("step_seconds must be positive and min_requests at least 1")


async def _figures(sessions: SessionFactory, model: str, *versions: str) -> dict[str, Any]:
    async with sessions.read() as session:
        return {v: await live.totals(session, model, v) for v in versions}


async def start(
    client: MlflowClient, sessions: SessionFactory, name: str, version: str, plan: Plan, actor: str
) -> Rollout:
    """Begin a rollout of ``version`` against the current champion: Conflict if the model
    has one going, or the version is the champion; the canary gates apply (409 naming one)."""
    plan.check()
    promote.contract_of(name)
    await asyncio.to_thread(promote.version_of, client, name, version)
    current = await asyncio.to_thread(promote.rollout, client, name)
    if current.champion is None:
        raise Conflict(f"{name} has no champion to roll {version} out against")
    if current.champion == str(version):
        raise Conflict(f"{name} version {version} is already the champion")
    async with sessions.read() as session:
        going = await session.scalar(
            select(Rollout.id).where(Rollout.model == name, Rollout.state.in_(ACTIVE))
        )
    if going is not None:
        raise Conflict(f"{name} already has rollout {going} going: abort it first")
    await actions.canary(
        client, sessions, name, version, plan.steps[0], plan.shadow, actor, reason="rollout"
    )
    start_figures = await _figures(sessions, name, current.champion, str(version))
    async with sessions.write() as session:
        rollout = Rollout(
            model=name,
            version=str(version),
            champion=current.champion,
            state=RolloutState.running,
            steps=list(plan.steps),
            step=0,
            step_started_at=utcnow(),
            step_seconds=plan.step_seconds,
            min_requests=plan.min_requests,
            gates=asdict(plan.gates) | {"shadow": plan.shadow},
            readings=[_reading(plan.steps[0], start_figures)],
            created_by=actor,
        )
        session.add(rollout)
        await session.commit()
    await events.publish(
        sessions,
        client,
        model=name,
        action="rollout_started",
        actor=actor,
        from_version=current.champion,
        to_version=str(version),
        details={"rollout": rollout.id, "steps": plan.steps},
    )
    return rollout


def _reading(percent: int, figures: dict[str, Any]) -> dict[str, Any]:
    return {"percent": percent, "started_at": utcnow().isoformat(), "start": figures}


async def get(sessions: SessionFactory, name: str, rollout_id: int) -> Rollout:
    async with sessions.read() as session:
        found = await session.get(Rollout, rollout_id)
    if found is None or found.model != name:
        raise NotFound(f"{name} has no rollout {rollout_id}")
    return found


async def listed(sessions: SessionFactory, name: str) -> list[Rollout]:
    async with sessions.read() as session:
        found = await session.scalars(
            select(Rollout).where(Rollout.model == name).order_by(Rollout.id.desc()).limit(50)
        )
        return list(found)


async def _transition(sessions: SessionFactory, rollout: Rollout, **values: Any) -> bool:
    """Move ``rollout`` from the (state, step) it was read in; False if another driver (or
    user) moved it first."""
    async with sessions.write() as session:
        done = await session.execute(
            update(Rollout)
            .where(
                Rollout.id == rollout.id,
                Rollout.state == rollout.state,
                Rollout.step == rollout.step,
            )
            .values(updated_at=utcnow(), **values)
        )
        await session.commit()
        return bool(getattr(done, "rowcount", 0))


# -- users' controls -----------------------------------------------------------------------


async def pause(
    client: MlflowClient, sessions: SessionFactory, rollout: Rollout, actor: str
) -> None:
    """Hold the rollout at its step (the canary keeps its share)."""
    if rollout.state != RolloutState.running:
        raise Conflict(f"rollout {rollout.id} is {rollout.state}, not running")
    if await _transition(sessions, rollout, state=RolloutState.paused):
        await _event(client, sessions, rollout, "rollout_paused", actor)


async def resume(
    client: MlflowClient, sessions: SessionFactory, rollout: Rollout, actor: str
) -> None:
    """Carry on from the step it was paused at, with a fresh measuring window."""
    if rollout.state != RolloutState.paused:
        raise Conflict(f"rollout {rollout.id} is {rollout.state}, not paused")
    figures = await _figures(sessions, rollout.model, rollout.champion, rollout.version)
    readings = [*rollout.readings[:-1], _reading(rollout.steps[rollout.step], figures)]
    if await _transition(
        sessions,
        rollout,
        state=RolloutState.running,
        step_started_at=utcnow(),
        readings=readings,
    ):
        await _event(client, sessions, rollout, "rollout_resumed", actor)


async def abort(
    client: MlflowClient, sessions: SessionFactory, rollout: Rollout, actor: str
) -> None:
    """Stop it: the canary ends, the champion is unchanged."""
    if rollout.state not in ACTIVE:
        raise Conflict(f"rollout {rollout.id} has ended ({rollout.state})")
    await _end(client, sessions, rollout, RolloutState.aborted, f"aborted by {actor}", actor)


# -- the driver ----------------------------------------------------------------------------


async def tick(client: MlflowClient, sessions: SessionFactory, now: datetime | None = None) -> None:
    """Judge every running rollout once: roll back on a failing gate, advance a step whose
    time is up with enough requests, promote after the last."""
    async with sessions.read() as session:
        running = list(
            await session.scalars(select(Rollout).where(Rollout.state == RolloutState.running))
        )
    for rollout in running:
        try:
            await _judge(client, sessions, rollout, now or utcnow())
        except Exception:
            log.exception("rollout %s: could not judge this tick", rollout.id)


async def _judge(
    client: MlflowClient, sessions: SessionFactory, rollout: Rollout, now: datetime
) -> None:
    actor = f"rollout:{rollout.id}"
    plan = await asyncio.to_thread(promote.rollout, client, rollout.model)
    if plan.champion != rollout.champion or plan.challenger != rollout.version:
        reason = (
            f"premise changed: the registry now has champion {plan.champion} and challenger "
            f"{plan.challenger} (the rollout had {rollout.champion} and {rollout.version})"
        )
        await _end(client, sessions, rollout, RolloutState.aborted, reason, actor, canary=False)
        return
    percent = rollout.steps[rollout.step]
    if plan.percent != percent:  # a driver stopped between the step and the registry
        await asyncio.to_thread(promote.set_canary_percent, client, rollout.model, percent)

    reading = rollout.readings[-1]
    figures = await _figures(sessions, rollout.model, rollout.champion, rollout.version)
    step = {v: live.since(figures[v], reading["start"].get(v, {})) for v in figures}
    verdict = judge(step[rollout.champion], step[rollout.version], rollout)
    readings = [*rollout.readings[:-1], reading | {"gates": verdict}]
    failed = [name for name, gate in verdict["gates"].items() if gate["ok"] is False]
    if failed:
        reason = "; ".join(verdict["gates"][name]["why"] for name in failed)
        await _end(
            client, sessions, rollout, RolloutState.rolled_back, reason, actor, readings=readings
        )
        return
    elapsed = (now - rollout.step_started_at).total_seconds()
    if elapsed < rollout.step_seconds or verdict["challenger_requests"] < rollout.min_requests:
        return
    if rollout.step == len(rollout.steps) - 1:
        await _finish(client, sessions, rollout, readings, actor)
        return
    following = rollout.steps[rollout.step + 1]
    if await _transition(
        sessions,
        rollout,
        step=rollout.step + 1,
        step_started_at=utcnow(),
        readings=[*readings, _reading(following, figures)],
    ):
        await asyncio.to_thread(promote.set_canary_percent, client, rollout.model, following)
        await _event(
            client, sessions, rollout, "rollout_step", actor, {"percent": following, **verdict}
        )


def judge(
    champion: dict[str, float], challenger: dict[str, float], rollout: Rollout
) -> dict[str, Any]:
    """The gates on one step's figures: each ok (True/False) or None (not enough to say)."""
    gates = rollout.gates
    requests = challenger.get(live.REQUESTS, 0.0)
    errors = challenger.get(live.ERRORS, 0.0)
    # Judged at once when the errors already exceed what min_requests could absorb.
    rate = errors / max(requests, rollout.min_requests)
    error_ok = rate <= gates["max_error_rate"] if requests else None
    fast, slow = live.p99(champion), live.p99(challenger)
    ratio = slow / fast if fast and slow else None
    enough = requests >= rollout.min_requests
    latency_ok = (ratio <= gates["max_p99_ratio"]) if ratio is not None and enough else None
    count = challenger.get(live.DIVERGENCE_COUNT, 0.0)
    divergence = challenger.get(live.DIVERGENCE_SUM, 0.0) / count if count else None
    limit = gates.get("max_shadow_divergence")
    divergence_ok = (
        divergence <= limit if limit is not None and divergence is not None and enough else None
    )
    return {
        "challenger_requests": requests,
        "champion_requests": champion.get(live.REQUESTS, 0.0),
        "gates": {
            "error_rate": {
                "ok": error_ok,
                "value": rate,
                "limit": gates["max_error_rate"],
                "why": f"challenger error rate {rate:.4f} > {gates['max_error_rate']}",
            },
            "p99_ratio": {
                "ok": latency_ok,
                "value": ratio,
                "limit": gates["max_p99_ratio"],
                "champion_p99_s": fast,
                "challenger_p99_s": slow,
                "why": f"challenger p99 {slow} s is {ratio and round(ratio, 2)}x the "
                f"champion's {fast} s (limit {gates['max_p99_ratio']}x)",
            },
            "shadow_divergence": {
                "ok": divergence_ok,
                "value": divergence,
                "limit": limit,
                "why": f"shadow divergence {divergence} > {limit}",
            },
        },
    }


async def _finish(
    client: MlflowClient,
    sessions: SessionFactory,
    rollout: Rollout,
    readings: list[Any],
    actor: str,
) -> None:
    try:
        await asyncio.to_thread(promote.promote, client, rollout.model, rollout.version)
    except PamtalkError as exc:  # a promotion gate (e.g. the metric) refused it
        await _end(
            client, sessions, rollout, RolloutState.aborted, exc.message, actor, readings=readings
        )
        return
    if await _transition(sessions, rollout, state=RolloutState.promoted, readings=readings):
        await events.publish(
            sessions,
            client,
            model=rollout.model,
            action="promote",
            actor=actor,
            from_version=rollout.champion,
            to_version=rollout.version,
            reason="rollout passed every step",
            details={"rollout": rollout.id},
        )


async def _end(
    client: MlflowClient,
    sessions: SessionFactory,
    rollout: Rollout,
    state: RolloutState,
    reason: str,
    actor: str,
    readings: list[Any] | None = None,
    canary: bool = True,
) -> None:
    """Roll back or abort: the canary ends (unless the registry was changed by hand), the
    champion stays, the reason is kept."""
    values: dict[str, Any] = {"state": state, "reason": reason[:2000]}
    if readings is not None:
        values["readings"] = readings
    if not await _transition(sessions, rollout, **values):
        return
    if canary:
        await asyncio.to_thread(promote.end_canary, client, rollout.model)
    action = "rollout_rolled_back" if state == RolloutState.rolled_back else "rollout_aborted"
    await _event(client, sessions, rollout, action, actor, reason=reason)


async def _event(
    client: MlflowClient,
    sessions: SessionFactory,
    rollout: Rollout,
    action: str,
    actor: str,
    details: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    await events.publish(
        sessions,
        client,
        model=rollout.model,
        action=action,
        actor=actor,
        from_version=rollout.champion,
        to_version=rollout.version,
        reason=reason,
        details={"rollout": rollout.id, "step": rollout.step} | (details or {}),
    )
