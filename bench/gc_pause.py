"""How long the garbage collector holds a started worker in a full collection, with the
start-up heap left to the collector and frozen (pamtalk/api/heap.py), side by side.

What it does
    1. Tiny trained champions in a scratch MLflow store (the load test's recipe), and an app
       (``create_app``) on a scratch SQLite database, started as a worker starts it: the
       models loaded, the background tasks running.
    2. ``--rounds`` rounds; in each, in turns: the start-up heap given back to the collector
       (``gc.unfreeze``) and a full collection timed, then frozen again and one timed.
    3. Medians of both, the objects the collector tracks either way; with
       ``--write`` the section between ``<!-- BEGIN bench/gc_pause.py -->`` and its END line
       in docs/benchmarks.md.

How to run
    .venv/bin/python bench/gc_pause.py --write
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import docs, harness
from bench.loadtest import PAMTALK, PREPARE_MODELS
from pamtalk.api.app import create_app
from pamtalk.settings import Settings

SECTION = docs.section_name(__file__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}'")
    return parser.parse_args(argv)


def full_collection_ms() -> float:
    start = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - start) * 1000


async def measure(folder: Path, rounds: int) -> dict[str, float]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
        mlflow_tracking_uri=f"sqlite:///{folder}/models/mlflow.db",
    )
    app = create_app(settings)
    thawed: list[float] = []
    frozen: list[float] = []
    async with app.router.lifespan_context(app):  # starts the worker; it freezes the heap
        tracked_frozen = len(gc.get_objects())
        for _ in range(rounds):
            gc.unfreeze()
            tracked_thawed = len(gc.get_objects())
            thawed.append(full_collection_ms())
            gc.freeze()
            frozen.append(full_collection_ms())
    return {
        "tracked_objects_thawed": tracked_thawed,
        "tracked_objects_frozen": tracked_frozen,
        "full_collection_ms_thawed": round(statistics.median(thawed), 2),
        "full_collection_ms_frozen": round(statistics.median(frozen), 2),
    }


def docs_section(report: dict[str, Any]) -> str:
    result, host = report["result"], report["machine"]
    started = dt.datetime.fromisoformat(report["date"])
    return "\n".join(
        [
            f"{started:%Y-%m-%d %H:%M} UTC, {harness.machine_line(host)}, load average "
            f"{host['load_average_1m_at_start']} at the start; command: `{report['command']}`",
            "",
            "| start-up heap | objects the collector walks | full collection (median ms) |",
            "|---|---:|---:|",
            f"| left to the collector | {result['tracked_objects_thawed']:,} | "
            f"{result['full_collection_ms_thawed']} |",
            f"| frozen (`gc.freeze()`, what a worker does) | "
            f"{result['tracked_objects_frozen']:,} | {result['full_collection_ms_frozen']} |",
            "",
            f"A full collection held the worker {result['full_collection_ms_thawed']} ms with "
            f"the start-up heap left to the collector, {result['full_collection_ms_frozen']} ms "
            "with it frozen.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        docs.check_section(SECTION, docs.DOCS)
    started, host = dt.datetime.now(dt.UTC), harness.machine()
    with tempfile.TemporaryDirectory(prefix="pamtalk-gc-") as scratch:
        folder = Path(scratch)
        env = {**os.environ, "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db"}
        command = [sys.executable, "-c", PREPARE_MODELS, str(folder / "models")]
        harness.run_step("models (tiny champions)", command, env)
        harness.run_step("database", [PAMTALK, "db", "upgrade"], env)
        result = asyncio.run(measure(folder, args.rounds))
    report = {
        "command": harness.command_line(__file__),
        "date": started.isoformat(timespec="seconds"),
        "machine": host,
        "result": result,
    }
    rendered = docs_section(report)
    print(f"\n{rendered}\n")
    if args.write:
        docs.write_section(SECTION, rendered, docs.DOCS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
