"""Live per-version serving counters that every API worker adds to the database, so that a
rollout's gates read the same figures whichever worker drives it (Prometheus's multiprocess
files are per machine; the database is what all workers share).

    live = LiveCounters()
    live.observe("pamtalk-esg", "3", seconds=0.004, failed=False)   # on each request
    await live.flush(sessions)                                       # every few seconds
    figures = await totals(session, "pamtalk-esg", "3")              # summed over workers
    p99(figures - at_step_start)
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import ServingCounter
from pamtalk.db.session import SessionFactory
from pamtalk.db.upsert import insert_for

# Upper bounds (seconds) of the latency buckets; one counter each, "le_<i>", plus overflow.
LATENCY_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
REQUESTS, ERRORS = "requests", "errors"
DIVERGENCE_SUM, DIVERGENCE_COUNT = "divergence_sum", "divergence_count"

Figures = dict[str, float]


def _bucket(seconds: float) -> str:
    return f"le_{bisect.bisect_left(LATENCY_BOUNDS, seconds)}"


class LiveCounters:
    """This process's counters since its last flush."""

    def __init__(self) -> None:
        self.worker = uuid.uuid4().hex[:16]
        self._pending: defaultdict[tuple[str, str], defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )

    def observe(self, model: str, version: str, seconds: float, failed: bool) -> None:
        figures = self._pending[(model, version)]
        figures[REQUESTS] += 1
        if failed:
            figures[ERRORS] += 1
        else:
            figures[_bucket(seconds)] += 1

    def divergence(self, model: str, challenger: str, value: float) -> None:
        figures = self._pending[(model, challenger)]
        figures[DIVERGENCE_SUM] += value
        figures[DIVERGENCE_COUNT] += 1

    async def flush(self, sessions: SessionFactory) -> None:
        """Add what was counted since the last flush to this worker's rows."""
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(float))
        rows = [
            {"model": m, "version": v, "worker": self.worker, "counter": k, "value": float(n)}
            for (m, v), figures in pending.items()
            for k, n in figures.items()
        ]
        if not rows:
            return
        try:
            async with sessions.write() as session:
                stmt = insert_for(session, ServingCounter).values(rows)
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["model", "version", "worker", "counter"],
                        set_={"value": ServingCounter.value + stmt.excluded.value},
                    )
                )
                await session.commit()
        except Exception:
            # Keep the counts for the next flush rather than lose them.
            for key, figures in pending.items():
                for name, value in figures.items():
                    self._pending[key][name] += value
            raise


async def totals(session: AsyncSession, model: str, version: str) -> Figures:
    """The version's counters summed over every worker, since they started counting."""
    found = await session.execute(
        select(ServingCounter.counter, func.sum(ServingCounter.value))
        .where(ServingCounter.model == model, ServingCounter.version == version)
        .group_by(ServingCounter.counter)
    )
    return {name: float(value) for name, value in found}


def since(now: Mapping[str, float], then: Mapping[str, float]) -> Figures:
    """What was counted between two readings of ``totals``."""
    return {k: v - then.get(k, 0.0) for k, v in now.items() if v != then.get(k, 0.0)}


def p99(figures: Mapping[str, float]) -> float | None:
    """The 99th percentile latency (the upper bound of its bucket; twice the last bound past
    it), None without samples."""
    counts = [figures.get(f"le_{i}", 0.0) for i in range(len(LATENCY_BOUNDS) + 1)]
    total = sum(counts)
    if total <= 0:
        return None
    target, seen = 0.99 * total, 0.0
    for bound, count in zip((*LATENCY_BOUNDS, 2 * LATENCY_BOUNDS[-1]), counts, strict=True):
        seen += count
        if seen >= target:
            return bound
    return 2 * LATENCY_BOUNDS[-1]
