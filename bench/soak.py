"""The soak: the peak scenario's rate for a long while on the production-like single box
(what ``make soak`` runs), watching for what only time shows — memory that grows, file
descriptors or connections that leak, latency that creeps.

What it does
    1. The load test's setup (bench/loadtest.py): database ``pamtalk_soak`` on a private
       PostgreSQL cluster with the stock configuration (tests/chaos/postgres.py; autovacuum
       on, as in production, where the machine's shared server has it off), or on
       ``--pg-url``; Redis db 4, tiny trained champions, ``pamtalk init``,
       ``pamtalk serve --workers 2``.
    2. ``pamtalk loadtest --scenario peak`` (100 req/s of the seed's mix, Locust) for
       ``--minutes`` (default 25) with a 60 s ramp. Every 10 s it samples the server's
       processes: resident memory, open file descriptors, and their own TCP connections to
       PostgreSQL and to Redis (counted on the processes, so that other clients of the
       machine's shared servers do not blur the reading), and descriptors that are not those
       connections (files, pipes, other sockets).
    3. The verdict, after a warm-up of ``--warmup`` minutes (default 5):
       - resident memory at the end at most 10 % above the end of the warm-up;
       - PostgreSQL and Redis connections at the end no more than their highest during the
         first half after warm-up (a leak grows; a pool does not), and never above the
         pools' bounds (the settings' pool sizes times the workers);
       - descriptors other than those connections: the same;
       - the p99 of the last 5 minutes within 20 % of the p99 of the first 5 after warm-up
         (each endpoint's p99 in both windows is in the summary, to point at what crept);
       - errors below the seed's 0.1 % (a box too slow for the rate shows here first).
    4. ``bench/results/soak/summary.json`` (and the samples), the table on stdout, and with
       ``--write`` the section between ``<!-- BEGIN bench/soak.py -->`` and its END line in
       docs/reliability.md.

    Exit status: 0 when every check passed.

How to run
    make soak                                      # 25 minutes
    .venv/bin/python bench/soak.py --minutes 8 --warmup 2   # a shorter look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import docs, harness
from bench.loadtest import PAMTALK, PREPARE_MODELS, server_env
from pamtalk.loadtest.report import percentile, read_samples
from pamtalk.settings import Settings
from tests.chaos.postgres import Postgres

ROOT = harness.ROOT
RESULTS = ROOT / "bench" / "results" / "soak"
DOC = ROOT / "docs" / "reliability.md"
SECTION = docs.section_name(__file__)
SAMPLE_EVERY_S = 10.0
WINDOW_S = 300.0  # the first and last 5 minutes whose p99 are compared
RAMP_S = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="how long the load runs")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before judging")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--pg-url",
        help="an existing PostgreSQL server (default: a private one, configured as production)",
    )
    parser.add_argument("--db-name", default="pamtalk_soak")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {DOC.name}")
    return parser.parse_args(argv)


# The server's pools per worker, from the settings it runs with (their defaults): PostgreSQL
# pool_size plus as much overflow; the cache, the security store and the rate limits' Redis pools.
_DEFAULTS = Settings()
PG_PER_WORKER = 2 * _DEFAULTS.database_pool_size
REDIS_PER_WORKER = 3 * _DEFAULTS.redis_max_connections


class Watcher:
    """Samples the server's resources every SAMPLE_EVERY_S seconds in a thread."""

    def __init__(self, server_pid: int, args: argparse.Namespace) -> None:
        self.server_pid, self.args = server_pid, args
        self.rows: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.pg_port = urlsplit(args.pg_url).port or 5432
        self.redis_port = urlsplit(args.redis_url).port or 6379
        self.start = time.monotonic()

    def __enter__(self) -> Watcher:
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            with contextlib.suppress(psutil.Error, OSError):
                self.rows.append(self.sample())

    def sample(self) -> dict[str, float]:
        processes = [psutil.Process(pid) for pid in harness.process_tree(self.server_pid)]
        to_port = {self.pg_port: 0, self.redis_port: 0}
        for process in processes:
            for conn in process.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port in to_port:
                    to_port[conn.raddr.port] += 1
        fds = sum(p.num_fds() for p in processes)
        return {
            "t": round(time.monotonic() - self.start, 1),
            "rss_mb": round(sum(p.memory_info().rss for p in processes) / 2**20, 1),
            "fds": fds,
            "pg_connections": to_port[self.pg_port],
            "redis_connections": to_port[self.redis_port],
            "other_fds": fds - to_port[self.pg_port] - to_port[self.redis_port],
        }


def judge(
    rows: list[dict[str, float]], samples_csv: Path, args: argparse.Namespace
) -> dict[str, Any]:
    duration, warmup = args.minutes * 60, args.warmup * 60
    after = [r for r in rows if r["t"] >= warmup]
    if len(after) < 4:
        raise SystemExit("too few samples after the warm-up: run longer")
    half = [r for r in after if r["t"] < (warmup + duration) / 2] or after[:1]
    first, last = after[0], after[-1]
    checks: dict[str, dict[str, Any]] = {
        "rss_growth": {
            "value": round(last["rss_mb"] / first["rss_mb"] - 1, 4),
            "bound": 0.10,
        }
    }
    for what in ("pg_connections", "redis_connections", "other_fds"):
        checks[f"{what}_leak"] = {
            "value": last[what] - max(r[what] for r in half),
            "bound": 0,
        }
    for what, per_worker in (
        ("pg_connections", PG_PER_WORKER),
        ("redis_connections", REDIS_PER_WORKER),
    ):
        checks[f"{what}_max"] = {
            "value": max(r[what] for r in after),
            "bound": per_worker * args.workers,
        }
    requests = read_samples(samples_csv)

    def p99(start: float, end: float, endpoint: str | None = None) -> float:
        window = (s.ms for s in requests if start <= s.t < end)
        if endpoint is not None:
            window = (s.ms for s in requests if start <= s.t < end and s.endpoint == endpoint)
        return percentile(sorted(window), 99)

    early_window = (max(warmup, RAMP_S), max(warmup, RAMP_S) + WINDOW_S)
    late_window = (duration - WINDOW_S, duration)
    early, late = p99(*early_window), p99(*late_window)
    endpoints = sorted({s.endpoint for s in requests})
    checks["p99_drift"] = {
        "value": round(late / early - 1, 4),
        "bound": 0.20,
        "early_p99_ms": round(early, 1),
        "late_p99_ms": round(late, 1),
    }
    failures = sum(not s.ok for s in requests)
    checks["error_rate"] = {"value": round(failures / max(len(requests), 1), 5), "bound": 0.001}
    for check in checks.values():
        check["passed"] = check["value"] <= check["bound"]
    return {
        "checks": checks,
        "p99_ms_by_endpoint": {
            e: {"early": round(p99(*early_window, e), 1), "late": round(p99(*late_window, e), 1)}
            for e in endpoints
        },
        "p99_ms_by_minute": [
            round(p99(m * 60.0, (m + 1) * 60.0), 1) for m in range(int(duration // 60))
        ],
        "requests": len(requests),
        "failures": failures,
        "passed": all(c["passed"] for c in checks.values()),
        "start": first,
        "end": last,
    }


def table(report: dict[str, Any]) -> str:
    lines = ["| check | value | bound | passed |", "|---|---:|---:|---|"]
    for name, check in report["verdict"]["checks"].items():
        extra = ""
        if name == "p99_drift":
            extra = f" ({check['early_p99_ms']} -> {check['late_p99_ms']} ms)"
        lines.append(
            f"| {name} | {check['value']}{extra} | {check['bound']} | "
            f"{'yes' if check['passed'] else 'no'} |"
        )
    start, end = report["verdict"]["start"], report["verdict"]["end"]
    lines += [
        "",
        f"After warm-up -> end: RSS {start['rss_mb']} -> {end['rss_mb']} MB, "
        f"fds {start['fds']} -> {end['fds']} (other than connections "
        f"{start['other_fds']} -> {end['other_fds']}), PostgreSQL connections "
        f"{start['pg_connections']} -> {end['pg_connections']}, Redis connections "
        f"{start['redis_connections']} -> {end['redis_connections']}; "
        f"{report['verdict']['requests']} requests, {report['verdict']['failures']} failed.",
        "",
        "| endpoint | p99 first 5 min (ms) | p99 last 5 min (ms) |",
        "|---|---:|---:|",
        *(
            f"| {name} | {p['early']} | {p['late']} |"
            for name, p in report["verdict"]["p99_ms_by_endpoint"].items()
        ),
        "",
        "p99 by minute (ms): " + ", ".join(str(v) for v in report["verdict"]["p99_ms_by_minute"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        docs.check_section(SECTION, DOC)
    if args.pg_url is not None:
        return soak(args)
    # A cluster of its own, with PostgreSQL's defaults: autovacuum on, as in production. The
    # machine's shared server runs with autovacuum off (fast tests), so no table is ever
    # analysed there: the planner keeps the empty tables' statistics while the soak grows
    # thousands of farms, and the farm list's plan scans and sorts all of them (p99 rose
    # linearly, 17 -> 283 ms over 20 minutes, medians flat).
    postgres = Postgres(args.db_name, fsync=True)
    try:
        postgres.start()
        args.pg_url = f"postgresql://postgres@127.0.0.1:{postgres.port}"
        return soak(args)
    finally:
        postgres.destroy()


def soak(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.out / "mlflow"
    env = server_env(args, models)
    started, host = dt.datetime.now(dt.UTC), harness.machine()
    harness.run_step(
        "models (tiny champions)", [sys.executable, "-c", PREPARE_MODELS, str(models)], env
    )
    asyncio.run(harness.recreate_database(args.pg_url, args.db_name))
    asyncio.run(harness.flush_redis(args.redis_url))
    report_dir = args.out / "peak"
    try:
        harness.run_step("pamtalk init", [PAMTALK, "init"], env)
        log = args.out / "server.log"
        with harness.pamtalk_serve(env, log, workers=args.workers, timeout=180) as (url, proc):
            command = [
                *(PAMTALK, "loadtest", "--scenario", "peak", "--target", url),
                *("--report", str(report_dir)),
                *("--duration", f"{args.minutes * 60:g}", "--ramp", f"{RAMP_S:g}"),
            ]
            harness.say(f"[soak] {args.minutes:g} min: {' '.join(command[1:])}")
            with Watcher(proc.pid, args) as watcher:
                code = subprocess.call(command, cwd=ROOT)
            if code not in (0, 1):
                raise SystemExit(f"pamtalk loadtest exited with {code}")
    finally:
        asyncio.run(harness.recreate_database(args.pg_url, args.db_name, create=False))
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "postgres": args.pg_url,
        "machine": host,
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "samples": watcher.rows,
        "verdict": judge(watcher.rows, report_dir / "samples.csv", args),
    }
    harness.write_json(args.out / "summary.json", report)
    rendered = table(report)
    print(f"\n{rendered}\n")
    if args.write:
        header = (
            f"{started:%Y-%m-%d %H:%M} UTC, {harness.machine_line(host)}; command: "
            f"`{report['command']}`"
        )
        docs.write_section(SECTION, f"{header}\n\n{rendered}", DOC)
    return 0 if report["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
