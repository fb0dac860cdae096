"""What traces cost a request: POST /v1/predictions/demand per second with tracing off and on
(every span made and handed to a BatchSpanProcessor whose exporter drops it), side by side.

What it does
    1. Tiny trained champions in a scratch MLflow store (the load test's recipe) and a scratch
       SQLite database with an admin API key: the embedded stack.
    2. ``--rounds`` rounds, off and on in turns; each a fresh process (tracing is set up once
       per process) that starts the app (``create_app``, models loaded), warms it up, then
       sends ``--requests`` requests in-process (httpx's ASGI transport, ``--concurrency`` at
       a time) of two kinds: the same forecast again (a cache hit: the server span and the
       cache's) and a forecast of a new history each time (a miss: the model's queue wait,
       inference and the cache set too).
    3. Medians of the rounds, the median of each round's on/off ratio, and the time tracing
       adds to a request (from the medians), written to ``bench/results/tracing.json``; with
       ``--write`` the section between ``<!-- BEGIN bench/tracing.py -->`` and its END line
       in docs/benchmarks.md.

How to run
    .venv/bin/python bench/tracing.py --write
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import docs, harness
from bench.loadtest import PAMTALK, PREPARE_MODELS

SECTION = docs.section_name(__file__)
RESULTS = Path(__file__).resolve().parent / "results" / "tracing.json"
ADMIN_KEY = "bench-tracing-admin-key-" + "x" * 24
AS_OF = date(2026, 3, 31)
KINDS = ("hit", "miss")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of off and on")
    parser.add_argument("--requests", type=int, default=600, help="per kind and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}'")
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def body(seed: int) -> dict[str, Any]:
    """A forecast request; each seed its own history (and so its own cache key)."""
    history = [
        {"quantity_kg": 200.0 + 30 * (day.weekday() < 5) + seed % 97, "price_krw_per_kg": 3000.0}
        for day in (AS_OF - timedelta(days=55 - i) for i in range(56))
    ]
    return {
        "crop": "cabbage",
        "region": "jeju",
        "as_of": AS_OF.isoformat(),
        "horizon_days": 7,
        "history": history,
    }


async def requests_per_s(client: Any, bodies: Sequence[dict[str, Any]], concurrency: int) -> float:
    headers = {"X-API-Key": ADMIN_KEY}
    queue = iter(bodies)

    async def sender() -> None:
        for one in queue:
            answer = await client.post("/v1/predictions/demand", json=one, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started)


async def child(mode: str, folder: Path, requests: int, concurrency: int, seed: int) -> None:
    """One measurement in this process: tracing ``mode``, then the app, then the requests."""
    import httpx
    from asgi_lifespan import LifespanManager

    from pamtalk import tracing
    from pamtalk.api.app import create_app
    from pamtalk.db import manage
    from pamtalk.settings import Settings

    if mode == "on":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Dropped(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropped()))
        tracing.start(provider)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
        mlflow_tracking_uri=f"sqlite:///{folder}/models/mlflow.db",
        admin_api_key=ADMIN_KEY,
        model_watch_interval=0,
        rate_limit_predictions="1000000/second",
        rate_limit_principal="1000000/second",
    )
    await manage.register_admin_key(settings)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        LifespanManager(app, startup_timeout=120),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        await requests_per_s(client, [body(seed)] * 50 + [body(-1 - i) for i in range(50)], 4)
        hit = await requests_per_s(client, [body(seed)] * requests, concurrency)
        fresh = [body(seed * 1_000_000 + i) for i in range(requests)]
        miss = await requests_per_s(client, fresh, concurrency)
    print(json.dumps({"mode": mode, "on": tracing.on(), "hit": hit, "miss": miss}))


def measure(folder: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAMTALK_"))}
    env["PAMTALK_LOG_LEVEL"] = "WARNING"
    results: dict[str, dict[str, list[float]]] = {m: {k: [] for k in KINDS} for m in ("off", "on")}
    for i in range(args.rounds):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            command = [
                sys.executable, __file__, "--child", mode, "--folder", str(folder),
                "--requests", str(args.requests), "--concurrency", str(args.concurrency),
                "--seed", str(2 * i + (mode == "on")),
            ]  # fmt: skip
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{mode} round {i} failed:\n{done.stderr[-3000:]}")
            seen = json.loads(done.stdout.strip().splitlines()[-1])
            assert seen["on"] == (mode == "on"), seen
            for kind in KINDS:
                results[mode][kind].append(seen[kind])
            print(f"round {i + 1} {mode}: hit {seen['hit']:.0f}/s, miss {seen['miss']:.0f}/s")
    return results


def docs_section(report: dict[str, Any]) -> str:
    """The generated text of the section: when, where, how, the table and the rounds."""
    host, config, results = report["machine"], report["config"], report["results"]
    lines = [
        f"{report['date']} UTC, {harness.machine_line(host)}, load average "
        f"{host['load_average_1m_at_start']} at the start; command: `{report['command']}`",
        "",
        "| request | tracing off (req/s) | tracing on, spans dropped (req/s) | on / off "
        "(median of the rounds' ratios) | added per request (ms, from the medians) |",
        "|---|---:|---:|---:|---:|",
    ]
    what = {
        "hit": "forecast, cache hit (3 spans: server, cache lookup and get)",
        "miss": "forecast, cache miss (6: + queue wait, inference, cache set)",
    }
    for kind in KINDS:
        off = statistics.median(results["off"][kind])
        on = statistics.median(results["on"][kind])
        # Each round's on and off ran back to back: their ratio is less moved by the load of
        # the moment than the ratio of the medians.
        paired = statistics.median(
            b / a for a, b in zip(results["off"][kind], results["on"][kind], strict=True)
        )
        added_ms = 1000 * (1 / on - 1 / off)
        lines.append(f"| {what[kind]} | {off:.0f} | {on:.0f} | {paired:.2f} | {added_ms:.2f} |")
    lines += [
        "",
        f"Medians of {config['rounds']} rounds of {config['requests']} requests per kind, "
        f"{config['concurrency']} at a time, in one process (no network: what tracing adds to "
        "the worker's own time). Rounds (off / on, req/s): "
        + "; ".join(
            f"{kind} "
            + ", ".join(
                f"{a:.0f}/{b:.0f}"
                for a, b in zip(results["off"][kind], results["on"][kind], strict=True)
            )
            for kind in KINDS
        )
        + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        asyncio.run(child(args.child, args.folder, args.requests, args.concurrency, args.seed))
        return 0
    if args.write:
        docs.check_section(SECTION, docs.DOCS)
    started, host = dt.datetime.now(dt.UTC), harness.machine()
    with tempfile.TemporaryDirectory(prefix="pamtalk-tracing-") as scratch:
        folder = Path(scratch)
        env = {**os.environ, "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db"}
        env["PAMTALK_ADMIN_API_KEY"] = ADMIN_KEY
        command = [sys.executable, "-c", PREPARE_MODELS, str(folder / "models")]
        harness.run_step("models (tiny champions)", command, env)
        harness.run_step("database", [PAMTALK, "db", "upgrade"], env)
        results = measure(folder, args)
    report = {
        "date": f"{started:%Y-%m-%d %H:%M}",
        "machine": host,
        "command": harness.command_line(__file__),
        "config": {k: vars(args)[k] for k in ("rounds", "requests", "concurrency")},
        "results": results,
    }
    harness.write_json(RESULTS, report)
    rendered = docs_section(report)
    print(f"\n{rendered}\n")
    if args.write:
        docs.write_section(SECTION, rendered, docs.DOCS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
