"""The seed's load test on the production-like single box: what ``make loadtest`` runs.

What it does
    1. PostgreSQL: drops and creates the database ``pamtalk_loadtest`` (``--db-name``) on
       postgres@127.0.0.1:5432; Redis: flushes db 3 (``--redis-url``).
    2. Models: a local MLflow store in ``bench/results/loadtest/mlflow`` with tiny trained
       champions of both models (``ensure_champions(..., tiny=True)``, about 15 s the first
       time, reused afterwards), so that ``pamtalk init`` does not train full-size ones and
       predictions have a champion to answer with.
    3. ``pamtalk init`` (migrate; seed 300 farms, 60,000 transactions and the demo users;
       register a random admin key), then ``pamtalk serve --workers 2`` (``--workers``) on a
       free port, local serving backend (in-process ONNX Runtime), waiting for ``/readyz``.
    4. The runs, one after another, each ``pamtalk loadtest`` (Locust, headless) with its
       report in ``bench/results/loadtest/<run>/``:

       ========  ========  ======  ===========  =========================  ==============
       run       scenario  users   target RPS   ramp                       scaled: s (ramp)
       ========  ========  ======  ===========  =========================  ==============
       basic     basic     1,000   20           linear                     60 (15)
       basic-50  basic     1,000   50 (phase 1) linear                     60 (15)
       peak      peak      5,000   100          exponential                90 (45)
       spike     spike     10,000  500          linear, 30 s               90 (30)
       ========  ========  ======  ===========  =========================  ==============

       Durations are scaled down from the scenarios' own (300 / 600 / 300 s) to keep the run
       near 10 minutes on 2 cores; ``--full`` runs them in full. While each runs, the CPU
       used by the server's processes, PostgreSQL and the whole box is sampled.
    5. Stops the server, drops the database, and writes ``summary.md`` (the table for
       docs/benchmarks.md) and ``summary.json`` next to the reports; with ``--write`` it
       also replaces its generated part of docs/benchmarks.md (between
       ``<!-- BEGIN bench/loadtest.py -->`` and its END line: machine, date, the table).

    Exit status: 0 when every run passed all its SLOs (the seed's and ours), 1 otherwise.

How to run
    Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth) and Redis on
    127.0.0.1:6379. From the repository root::

        make loadtest
        .venv/bin/python bench/loadtest.py [--runs basic,spike] [--full] [--workers 2]
                                           [--loadtest-args "--rps 300"] [--out DIR]
                                           [--write]

Caveat: Locust runs on the same cores as the server, PostgreSQL and Redis; each run's
``summary.json`` records the cores the load generator used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness

ROOT = harness.ROOT
RESULTS = harness.RESULTS / "loadtest"
SECTION = docs.section_name(__file__)
PAMTALK = str(harness.BIN / "pamtalk")
READY_TIMEOUT_S = 90.0
PAUSE_S = 5.0  # between runs, for the box to settle


@dataclass(frozen=True)
class Run:
    label: str
    scenario: str
    scaled: tuple[float, float]  # duration, ramp (s)
    extra: tuple[str, ...] = ()


RUNS = (
    Run("basic", "basic", (60, 15)),
    Run("basic-50", "basic", (60, 15), ("--rps", "50")),
    Run("peak", "peak", (90, 45)),
    Run("spike", "spike", (90, 30)),
)

PREPARE_MODELS = """
import sys
from pathlib import Path
from pamtalk.registry import defaults, store
from pamtalk.settings import Settings
folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
settings = Settings(mlflow_tracking_uri=f"sqlite:///{folder}/mlflow.db")
client = store.connect(settings)
promoted = defaults.ensure_champions(client, settings, folder / "train", say=print, tiny=True)
print("models:", ", ".join(promoted) or "champions already there")
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(r.label for r in RUNS), help="which runs")
    parser.add_argument("--full", action="store_true", help="the scenarios' full durations")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="pamtalk_loadtest")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--loadtest-args", default="", help='more for every run, e.g. "--rps 300 --users 6000"'
    )
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    return parser.parse_args(argv)


def say(message: str) -> None:
    harness.say(f"[loadtest] {message}")


# --- services ---------------------------------------------------------------------------------


def server_env(args: argparse.Namespace, models: Path) -> dict[str, str]:
    pg_host = args.pg_url.removeprefix("postgresql://")
    env = {
        **os.environ,
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": f"postgresql+asyncpg://{pg_host}/{args.db_name}",
        "PAMTALK_REDIS_URL": args.redis_url,
        "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{models}/mlflow.db",
        "PAMTALK_SERVING_BACKEND": "local",
        "PAMTALK_ADMIN_API_KEY": secrets.token_hex(24),
        "PAMTALK_LOG_LEVEL": "WARNING",
        # Each run logs in 2 x --identities + 1 users from this one address within seconds,
        # beyond the default 30 logins a minute per address; the other limits stay as
        # deployed (the spike's 500 req/s over 40 keys is ~12 req/s per user, under 50).
        "PAMTALK_RATE_LIMIT_AUTH": "1000/minute",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `pamtalk serve` makes its own
    env.pop("PAMTALK_CELERY_BROKER_URL", None)
    return env


def cpu_meter(server_pid: int) -> harness.CpuMeter:
    """Cores used over a run: the server's process tree, PostgreSQL's processes (the whole
    cluster: other databases' work included), Redis, and the whole box."""
    return harness.CpuMeter(
        {
            "server": lambda: harness.process_tree(server_pid),
            "postgres": lambda: harness.named_processes("postgres"),
            "redis": lambda: harness.named_processes("redis-server"),
        }
    )


# --- runs and the summary -----------------------------------------------------------------------


def run_one(run: Run, url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / run.label
    command = [PAMTALK, "loadtest", "--scenario", run.scenario, "--target", url]
    command += ["--report", str(out), *run.extra, *shlex.split(args.loadtest_args)]
    if not args.full:
        duration, ramp = run.scaled
        command += ["--duration", f"{duration:g}", "--ramp", f"{ramp:g}"]
    say(f"run {run.label}: {' '.join(command[1:])}")
    cache_before = cache_counts(url)
    loadtest = subprocess.Popen(command, cwd=ROOT)
    meter = cpu_meter(pid)
    with contextlib.ExitStack() as window:
        # Meter while Locust runs only: not the logins before it (Argon2 on the server).
        locust = _wait_for_locust(loadtest)
        if locust is not None:
            window.enter_context(meter)
            with contextlib.suppress(psutil.Error):
                locust.wait()
    code = loadtest.wait()
    if code not in (0, 1) or locust is None:
        raise RuntimeError(f"run {run.label}: pamtalk loadtest exited with {code}")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    cores = meter.cores
    summary["machine"] |= {
        f"{what}_cores": round(cores[what], 2) for what in ("server", "postgres", "redis")
    } | {"box_busy_cores": round(cores["box"], 2)}
    summary["cache_hit_ratio"] = hit_ratios(cache_before, cache_counts(url))
    harness.write_json(out / "summary.json", summary)
    kept = {k: v for k, v in summary.items() if k != "timeline"}  # it is in the run's own
    return {"run": run.label, "command": "pamtalk " + " ".join(command[1:]), **kept}


CACHE_LINE = re.compile(r'^cache_requests_total\{namespace="([^"]+)",result="([^"]+)"\} (\S+)$')


def cache_counts(url: str) -> dict[str, float]:
    """``cache_requests_total`` by namespace and result, summed over the workers."""
    counts: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if match := CACHE_LINE.match(line):
                key = f"{match[1]}:{match[2]}"
                counts[key] = counts.get(key, 0.0) + float(match[3])
    return counts


def hit_ratios(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per namespace, the share of lookups during the run that were hits."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    ratios = {}
    for namespace in sorted({k.split(":")[0] for k in delta}):
        hits = delta.get(f"{namespace}:hit", 0.0)
        total = sum(v for k, v in delta.items() if k.startswith(f"{namespace}:"))
        if total:
            ratios[namespace] = round(hits / total, 3)
    return ratios


def _wait_for_locust(parent: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The Locust process ``pamtalk loadtest`` starts, once it is there."""
    while parent.poll() is None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(parent.pid).children():
                if "locust" in child.cmdline():
                    return child
        time.sleep(0.05)
    return None


def fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | users | target req/s | steady req/s | requests | errors | p50 ms | p95 ms "
        "| p99 ms | max ms | seed SLOs | ours | server / PG / Locust / box cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        load, overall, steady, machine = r["load"], r["overall"], r["steady"], r["machine"]
        verdicts = {}
        for source in ("seed", "ours"):
            failed = [c["rule"] for c in r["checks"] if c["source"] == source and not c["passed"]]
            verdicts[source] = "pass" if not failed else "FAIL: " + "; ".join(failed)
        cores = " / ".join(
            fmt(machine.get(k), 2)
            for k in ("server_cores", "postgres_cores", "generator_cpu_cores", "box_busy_cores")
        )
        lines.append(
            f"| {r['run']} | {load['users']:,} | {load['rps']:g} | {fmt(steady['rps'])} "
            f"| {overall['requests']:,} | {overall['failures']:,} | {fmt(overall['p50_ms'])} "
            f"| {fmt(overall['p95_ms'])} | {fmt(overall['p99_ms'])} | {fmt(overall['max_ms'])} "
            f"| {verdicts['seed']} | {verdicts['ours']} | {cores} |"
        )
    return "\n".join(lines)


def docs_section(report: dict[str, Any]) -> str:
    """The generated part of the load test's section of docs/benchmarks.md."""
    host = report["machine"]
    return f"""### Machine

{harness.machine_line(host)}; PostgreSQL, Redis and Locust on the same box
(the last column gives the cores each used). 1-minute load average at start:
{host["load_average_1m_at_start"]}.

### Date

{report["started_at"]}; `{report["command"]}`; {report["setup"]}.

### Results

{report["table_markdown"]}"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [r for r in RUNS if r.label in args.runs.split(",")]
    if not chosen:
        raise SystemExit(f"--runs: choose from {', '.join(r.label for r in RUNS)}")
    if args.write:
        docs.check_section(SECTION)
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.out / "mlflow"
    env = server_env(args, models)
    started, host = dt.datetime.now(dt.UTC), harness.machine()
    load_average = host["load_average_1m_at_start"]
    say(f"{started:%Y-%m-%d %H:%M} UTC, load average {load_average:.2f}, {host['cpus']} cpus")

    prepare = [sys.executable, "-c", PREPARE_MODELS, str(models)]
    harness.run_step("models (tiny champions)", prepare, env)
    asyncio.run(harness.recreate_database(args.pg_url, args.db_name))
    asyncio.run(harness.flush_redis(args.redis_url))
    results = []
    try:
        harness.run_step("pamtalk init", [PAMTALK, "init"], env)
        log = args.out / "server.log"
        serve = harness.pamtalk_serve(env, log, workers=args.workers, timeout=READY_TIMEOUT_S)
        with serve as (url, proc):
            say(f"serving on {url} with {args.workers} workers")
            for i, run in enumerate(chosen):
                if i:
                    time.sleep(PAUSE_S)
                results.append(run_one(run, url, proc.pid, args))
    finally:
        if not args.keep_db:
            asyncio.run(harness.recreate_database(args.pg_url, args.db_name, create=False))

    table = markdown(results)
    setup = (
        f"{host['cpus']} cpus; server --workers {args.workers}; "
        f"{'full' if args.full else 'scaled-down'} durations"
    )
    header = f"{started:%Y-%m-%d %H:%M} UTC; {setup}"
    (args.out / "summary.md").write_text(f"{header}\n\n{table}\n")
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "machine": host,
        "setup": setup,
        "table_markdown": table,
        "runs": results,
    }
    harness.write_json(args.out / "summary.json", report)
    print(f"\n{header}\n\n{table}\n")
    say(f"reports in {args.out}")
    if args.write:
        docs.write_section(SECTION, docs_section(report))
        say(f"updated: {docs.DOCS.relative_to(ROOT)}")
    return 0 if all(r["verdict"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
