"""Latency, then a partition, between the API and PostgreSQL and Redis (a FaultProxy in front
of each), under a read mix whose clients send a deadline (X-Request-Timeout): every answer
comes within the deadline (a 200, or a 504 saying it passed), the excess is shed with
retriable 503s, and the service recovers by itself when the network heals."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.chaos import load, stack
from tests.chaos.load import Outcome, Record
from tests.chaos.scenarios import Verdict, non_retriable

DEADLINE_S = 1.0
# What the client may see beyond its deadline: the server's answer on its way back, and this
# loaded box's scheduling (client and server share 2 cores).
SLACK_S = 0.5
PHASES = {"steady": 2.0, "slow": 4.0, "partition": 3.0, "healed": 6.0}  # seconds each
SLOW_DB_S, SLOW_REDIS_S = 0.15, 0.05  # added to every chunk, each way
READS = ("/v1/transactions?limit=20", "/v1/farms?limit=20", "/v1/dashboard")


def _deadline_answer(outcome: Outcome) -> bool:
    """The documented answer to a request whose deadline passed."""
    return outcome.status == 504 and outcome.code == "deadline_exceeded"


async def _network_faults(service: stack.Stack) -> Verdict:
    verdict = Verdict("network_faults")
    db, cache = service.db_proxy, service.redis_proxy
    assert db is not None and cache is not None
    record = Record()
    start = time.monotonic()
    moments: dict[str, float] = {}
    end = start + sum(PHASES.values())
    headers = service.admin | {"X-Request-Timeout": str(DEADLINE_S)}

    async def faults() -> None:
        at = start
        for phase, seconds in PHASES.items():
            moments[phase] = time.monotonic()
            if phase == "slow":
                db.delay_s, cache.delay_s = SLOW_DB_S, SLOW_REDIS_S
            elif phase == "partition":
                db.delay_s = cache.delay_s = 0.0
                db.partition()
                cache.partition()
            elif phase == "healed":
                db.heal()
                cache.heal()
            at += seconds
            await asyncio.sleep(max(0.0, at - time.monotonic()))

    async def reads(number: int) -> None:
        n = number
        while time.monotonic() < end:
            n += 1
            path = READS[n % len(READS)]
            await record.send(http, path.split("?")[0], "GET", path, headers=headers)
            await asyncio.sleep(0.02)

    async with load.client(service.url, 4) as http:
        await asyncio.gather(load.workers(4, reads), faults())

    healed = moments["healed"]
    late = [o for o in record.outcomes if o.latency > DEADLINE_S + SLACK_S]
    first_good = min(
        (o.ended for o in record.outcomes
         if o.kind == "/v1/transactions" and o.status == 200 and o.began >= healed),
        default=None,
    )  # fmt: skip
    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(non_retriable(o) and not _deadline_answer(o) for o in record.outcomes)
    verdict.recovery_s = None if first_good is None else round(first_good - healed, 2)
    phases = list(PHASES)
    verdict.measured = {
        "statuses": record.statuses(),
        **{
            f"{phase}_statuses": Record(
                record.between(
                    moments[phase], moments[phases[i + 1]] if i + 1 < len(phases) else end
                )
            ).statuses()
            for i, phase in enumerate(phases)
        },
        "past_deadline": len(late),
        "worst_ms": round(1000 * max((o.latency for o in record.outcomes), default=0.0), 1),
        "p99_ms": load.p99_ms(record.outcomes),
    }
    if late:
        verdict.problems.append(
            f"{len(late)} answers came more than {SLACK_S} s after the {DEADLINE_S} s deadline"
        )
    return verdict.judge()


def network_faults(folder: Path) -> Verdict:
    """Latency, then a partition, between the API and PostgreSQL/Redis."""
    with stack.running(folder / "network_faults", redis=True, faulty=True) as service:
        return asyncio.run(_network_faults(service))
