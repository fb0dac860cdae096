"""The API process's periodic work: adding its serving figures to the database, sealing
ledger anchors that are due, relaying notifications, and judging running rollouts (every
worker does all of it; rollout transitions are conditional updates, so they never
double-step; anchors are sealed under the chain head lock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pamtalk.api import queue_lengths
from pamtalk.api.state import AppState
from pamtalk.ledger import anchors, handover
from pamtalk.notify import relay
from pamtalk.registry import events, rollouts

log = logging.getLogger(__name__)


async def _every(seconds: float, work: Callable[[], Awaitable[None]], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except Exception:  # a database or registry hiccup: try again next time
            log.exception("%s failed; retrying in %s s", what, seconds)


def start_background(state: AppState) -> list[asyncio.Task[None]]:
    settings, predictor = state.settings, state.predictor

    async def flush() -> None:
        await predictor.live.flush(state.sessions)

    async def judge() -> None:
        await flush()  # this worker's latest figures count in its own judgement
        await rollouts.tick(await predictor.registry(), state.sessions)

    policy = anchors.Policy.from_settings(settings)

    async def anchor() -> None:  # seals anchors on time when no write comes to do it
        async with state.sessions.write() as session:  # and hands over those not yet submitted
            await handover.settle(session, settings)

    tasks = [asyncio.create_task(_every(settings.serving_counters_flush_s, flush, "counter flush"))]
    anchor_s = policy.max_age.total_seconds() / 4
    tasks.append(asyncio.create_task(_every(anchor_s, anchor, "ledger anchoring")))
    notify = relay.run(state.sessions, settings, events.subscribe, events.unsubscribe)
    tasks.append(asyncio.create_task(notify))
    if settings.rollout_tick_s > 0:
        tasks.append(asyncio.create_task(_every(settings.rollout_tick_s, judge, "rollout tick")))
    if (broker := settings.celery_broker_url) and settings.queue_metrics_interval_s > 0:

        async def measure() -> None:
            await queue_lengths.record(broker)

        every = settings.queue_metrics_interval_s
        tasks.append(asyncio.create_task(_every(every, measure, "queue length metrics")))
    return tasks


async def stop_background(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
