"""Server CPU per request, per endpoint of the load test's mix, with a py-spy profile of each.

What it measures
    Against the production shape with one worker (PostgreSQL + Redis, ``pamtalk serve
    --workers 1``, local serving backend; one process, so one profile covers the server), for
    each endpoint of the seed's mix (``pamtalk.loadtest.scenarios.MIX``) and then for the mix
    itself (its 100-slot schedule): a closed loop of ``--concurrency`` connections sending
    that endpoint's requests, built as the load test builds them (same bodies, roles, farm
    list filters, demand series and horizons, fresh ``Idempotency-Key`` per purchase).

    Each endpoint runs twice, ``--warmup`` s unmeasured then ``--duration`` s measured:

    1. **metered**: the server process's CPU time over the window / the requests that ended
       in it = server CPU ms per request; also PostgreSQL's and Redis's CPU per request
       (their whole processes: other databases' work on the box counts too), req/s,
       p50/p99 and the cache's hit ratio over the window (from ``/metrics``);
    2. **profiled**: the same load with ``py-spy record --format raw`` attached to the server
       (its own window, so the sampler's cost does not enter the CPU figure), written to
       ``bench/results/cpu/<endpoint>.txt`` (collapsed stacks: flamegraph.pl or speedscope.app
       open it) and summarised by ``bench.stacks``: top functions by self time, CPU by
       package, and our code's share (innermost ``pamtalk`` frame, inclusive).

    The mix's CPU per request is given twice: weighted from the endpoints (MIX weights) and
    measured over the mix's own window; they differ by what one endpoint's traffic does to
    another's (the farm registrations invalidate the farm list cache).

How to run
    Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth), Redis on
    127.0.0.1:6379 and py-spy (``.venv/bin/py-spy``; ptrace rights on the server). From the
    repository root::

        .venv/bin/python bench/cpu.py [--duration 10] [--warmup 3] [--concurrency 4]
                                      [--only "GET /v1/farms"] [--no-profile] [--write]

    It prepares tiny champions in ``bench/results/cpu/mlflow`` (as bench/loadtest.py does),
    drops and recreates the database ``pamtalk_cpu``, flushes Redis db 9, runs ``pamtalk
    init``, serves, makes API keys for ``--identities`` buyers and farmers (per-user rate
    limits stay on, as deployed: the keys are rotated so no user goes over them), runs the
    windows, then stops the server and drops the database. Writes ``bench/results/cpu/
    cpu.json``; ``--write`` replaces its section of docs/benchmarks.md (between
    ``<!-- BEGIN bench/cpu.py -->`` and its END line). About 2 x (warmup + duration) x 9 s
    plus ~40 s of setup. ``--from-json bench/results/cpu/cpu.json [--write]`` renders a
    saved run's section again without measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness, loadtest, stacks
from pamtalk.loadtest import prepare
from pamtalk.loadtest.requests import Requests
from pamtalk.loadtest.scenarios import MIX, Endpoint, schedule

RESULTS = harness.RESULTS / "cpu"
SECTION = docs.section_name(__file__)
PY_SPY = harness.BIN / "py-spy"
READY_TIMEOUT_S = 90.0
PASSWORD = "pamtalk-demo"
MIX_NAME = "the mix"
TOP_FUNCTIONS = 8
TOP_PACKAGES = 6
PG_STATS_FLUSH_S = 1.5  # PostgreSQL reports a backend's transaction counts within ~1 s


# --- the requests of the mix, as the load test builds them -------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    role: str
    body: Any = None
    headers: dict[str, str] | None = None


def builder(data: prepare.Fixtures, seed: int) -> Callable[[Endpoint], Request]:
    """The load test's own request builders (pamtalk/loadtest/requests.py), over the same
    fixtures and with the same draws."""
    requests = Requests(data, random.Random(seed), f"cpu-{os.getpid()}-{seed}")

    def build(endpoint: Endpoint) -> Request:
        method, _ = endpoint.name.split(" ", 1)
        drawn = requests.build(endpoint.name)
        return Request(method, drawn.path, endpoint.role, drawn.body, drawn.headers)

    return build


class Keys:
    """API keys per role, taken in turn: every user stays under its per-user rate limit."""

    def __init__(self, data: prepare.Fixtures) -> None:
        self.cycles = {
            "buyer": itertools.cycle([k.key for k in data.buyers]),
            "farmer": itertools.cycle([k.key for k in data.farmers]),
        }

    def next(self, role: str) -> str:
        return next(self.cycles[role])


# --- one window -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    name: str
    requests: int
    errors: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # per request
    postgres_cpu_ms: float
    redis_cpu_ms: float
    pg_commits: float  # PostgreSQL transactions per request in the database, committed
    pg_rollbacks: float  # and rolled back (pool pre-pings, sessions closed unwritten)
    writes: float  # the server's write syscalls per request: one per message sent
    reads: float  # and reads: one per answer (or part of one) received
    client_cores: float
    cache_hits: dict[str, float]  # namespace -> hit ratio over the window
    error_kinds: dict[str, int]


def endpoints_of(name: str) -> Iterator[Endpoint]:
    """The endpoint ``name``, or the mix's 100-slot schedule over and over."""
    if name == MIX_NAME:
        yield from (MIX[i] for i in itertools.cycle(schedule(MIX)))
    else:
        yield from itertools.repeat(next(e for e in MIX if e.name == name))


async def worker(
    client: httpx.AsyncClient,
    next_request: Callable[[], tuple[Request, int]],
    keys: Keys,
    window: tuple[float, float],
    samples: harness.Samples,
) -> None:
    while time.perf_counter() < window[1]:
        request, expected = next_request()
        headers = {"X-API-Key": keys.next(request.role), **(request.headers or {})}
        began = time.perf_counter()
        error: str | None = None
        try:
            response = await client.request(
                request.method, request.path, json=request.body, headers=headers
            )
            if response.status_code != expected:
                error = f"HTTP {response.status_code} {response.text[:120]}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        samples.record(began, time.perf_counter(), window, error)


def cpu_meter(server_pid: int) -> harness.CpuMeter:
    return harness.CpuMeter(
        {
            "server": lambda: harness.process_tree(server_pid),
            "postgres": lambda: harness.named_processes("postgres"),
            "redis": lambda: harness.named_processes("redis-server"),
        }
    )


async def cache_counts(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    text = (await client.get("/metrics")).text
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("cache_requests_total{"):
            namespace = line.split('namespace="', 1)[1].split('"', 1)[0]
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[namespace, result] = counts.get((namespace, result), 0.0) + float(
                line.rsplit(" ", 1)[1]
            )
    return counts


async def pg_transactions(pg_url: str, name: str) -> tuple[int, int]:
    """The database's committed and rolled-back transactions so far (pg_stat_database;
    PostgreSQL flushes a backend's counts within about a second of its last transaction)."""
    conn = await asyncpg.connect(f"{pg_url}/postgres")
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", name
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)
    finally:
        await conn.close()


def hit_ratios(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[str, float]:
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    ratios = {}
    for namespace in sorted({ns for ns, _ in delta}):
        hits = delta.get((namespace, "hit"), 0.0)
        total = sum(v for (ns, _), v in delta.items() if ns == namespace)
        if total > 0:
            ratios[namespace] = round(hits / total, 3)
    return ratios


@contextlib.contextmanager
def py_spy(pid: int, duration: float, rate: int, out: Path) -> Iterator[None]:
    """py-spy sampling the server for ``duration`` s from now (non-blocking: the server is
    not paused per sample), collapsed stacks with full paths to ``out``."""
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", f"{duration:.0f}"]
    command += ["--rate", str(rate), "--format", "raw", "--full-filenames", "--function"]
    command += ["--nonblocking", "--output", str(out)]
    with (out.with_suffix(".log")).open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_window(
    name: str, url: str, pid: int, data: prepare.Fixtures, args: argparse.Namespace, seed: int
) -> tuple[Window, harness.Samples]:
    build, keys = builder(data, seed), Keys(data)
    endpoints = endpoints_of(name)

    def next_request() -> tuple[Request, int]:
        endpoint = next(endpoints)
        return build(endpoint), endpoint.status

    samples = harness.Samples()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0)
            )
            for _ in range(args.concurrency + 1)
        ]
        window = harness.Load(args.concurrency, args.warmup, args.duration).window()
        work = asyncio.gather(
            *(worker(c, next_request, keys, window, samples) for c in clients[1:])
        )
        await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
        counts_before = await cache_counts(clients[0])
        pg_before = await pg_transactions(args.pg_url, args.db_name)
        io_before = psutil.Process(pid).io_counters()
        meter = cpu_meter(pid)
        meter.start()
        client_cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
        cores = meter.stop()
        io_after = psutil.Process(pid).io_counters()
        client_cores = (time.process_time() - client_cpu0) / args.duration
        await work
        counts_after = await cache_counts(clients[0])
        await asyncio.sleep(PG_STATS_FLUSH_S)
        pg_after = await pg_transactions(args.pg_url, args.db_name)
    ordered = sorted(samples.latencies)
    done = len(ordered) + sum(samples.errors.values())
    per_request = args.duration * 1000 / max(done, 1)  # ms of window per request
    result = Window(
        name=name,
        requests=done,
        errors=sum(samples.errors.values()),
        req_per_s=round(done / args.duration, 1),
        p50_ms=round(harness.percentile(ordered, 50) * 1000, 2),
        p99_ms=round(harness.percentile(ordered, 99) * 1000, 2),
        server_cpu_ms=round(cores["server"] * per_request, 3),
        postgres_cpu_ms=round(cores["postgres"] * per_request, 3),
        redis_cpu_ms=round(cores["redis"] * per_request, 3),
        pg_commits=round((pg_after[0] - pg_before[0]) / max(done, 1), 2),
        pg_rollbacks=round((pg_after[1] - pg_before[1]) / max(done, 1), 2),
        writes=round((io_after.write_count - io_before.write_count) / max(done, 1), 1),
        reads=round((io_after.read_count - io_before.read_count) / max(done, 1), 1),
        client_cores=round(client_cores, 2),
        cache_hits=hit_ratios(counts_before, counts_after),
        error_kinds={k[:160]: v for k, v in samples.errors.items()},
    )
    return result, samples


async def profile_window(
    name: str, url: str, pid: int, data: prepare.Fixtures, args: argparse.Namespace, seed: int
) -> tuple[Path, int]:
    """The same load again with py-spy attached over its measured window."""
    out = args.out / f"{slug(name)}.txt"
    out.unlink(missing_ok=True)
    task = asyncio.create_task(run_window(name, url, pid, data, args, seed))
    await asyncio.sleep(args.warmup)
    with py_spy(pid, args.duration, args.rate, out):
        window, _ = await task
    return out, window.requests


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# --- the report --------------------------------------------------------------------------------


def weighted_cpu(windows: list[Window]) -> float:
    by_name = {w.name: w for w in windows}
    total = sum(e.weight for e in MIX if e.name in by_name)
    return sum(by_name[e.name].server_cpu_ms * e.weight for e in MIX if e.name in by_name) / total


def summarise(path: Path, requests: int, rate: int) -> dict[str, Any]:
    profile = stacks.read(path)
    share = profile.share
    return {
        "file": str(path.relative_to(harness.ROOT)),
        "samples": profile.samples,
        "sampled_cpu_ms_per_request": round(profile.samples / rate * 1000 / max(requests, 1), 3),
        "functions": [
            {"where": f.where, "package": f.package, "self": round(share(n), 3)}
            for f, n in profile.leaves.most_common(TOP_FUNCTIONS)
        ],
        "packages": {p: round(share(n), 3) for p, n in profile.packages.most_common()},
        "ours": {w: round(share(n), 3) for w, n in profile.ours.most_common(6)},
        "ours_self": round(share(profile.packages.get(stacks.OURS, 0)), 3),
    }


def pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def summary_table(windows: list[Window]) -> str:
    weights = {e.name: e.weight for e in MIX}
    lines = [
        "| endpoint | weight | req/s | p50 ms | p99 ms | errors | server CPU ms/req "
        "| PostgreSQL ms/req | Redis ms/req | PG commits / rollbacks per req "
        "| server writes / reads per req | cache hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in windows:
        hits = ", ".join(f"{ns} {pct(r)}" for ns, r in w.cache_hits.items()) or "-"
        weight = f"{weights[w.name]} %" if w.name in weights else "100 %"
        name = f"`{w.name}`" if w.name in weights else f"**{w.name}**"
        lines.append(
            f"| {name} | {weight} | {w.req_per_s:.0f} | {w.p50_ms:.1f} | {w.p99_ms:.1f} "
            f"| {w.errors} | **{w.server_cpu_ms:.2f}** | {w.postgres_cpu_ms:.2f} "
            f"| {w.redis_cpu_ms:.2f} | {w.pg_commits:.2f} / {w.pg_rollbacks:.2f} "
            f"| {w.writes:.1f} / {w.reads:.1f} | {hits} |"
        )
    endpoints = [w for w in windows if w.name in weights]
    if len(endpoints) == len(MIX):
        lines.append(
            f"| **weighted by MIX** | 100 % | | | | | **{weighted_cpu(endpoints):.2f}** | | | | | |"
        )
    return "\n".join(lines)


def package_table(profiles: dict[str, dict[str, Any]]) -> str:
    totals: dict[str, float] = {}
    for p in profiles.values():
        for package, share in p["packages"].items():
            totals[package] = totals.get(package, 0.0) + share
    top = sorted(totals, key=lambda k: -totals[k])[: TOP_PACKAGES + 4]
    lines = [
        "| endpoint | sampled ms/req | " + " | ".join(f"`{p}`" for p in top) + " | other |",
        "|---|---:|" + "---:|" * (len(top) + 1),
    ]
    for name, p in profiles.items():
        shares = [p["packages"].get(k, 0.0) for k in top]
        lines.append(
            f"| `{name}` | {p['sampled_cpu_ms_per_request']:.2f} | "
            + " | ".join(pct(s) for s in shares)
            + f" | {pct(max(0.0, 1 - sum(shares)))} |"
        )
    return "\n".join(lines)


def function_tables(profiles: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, p in profiles.items():
        rows = "\n".join(
            f"| {pct(f['self'])} | `{f['where']}` | {f['package']} |" for f in p["functions"]
        )
        ours = "; ".join(f"`{w}` {pct(s)}" for w, s in p["ours"].items())
        parts.append(
            f"**`{name}`** ({p['samples']} samples, `{p['file']}`)\n\n"
            f"| self | function | package |\n|---:|---|---|\n{rows}\n\n"
            f"Innermost frame of ours (inclusive): {ours}"
        )
    return "\n\n".join(parts)


def docs_section(report: dict[str, Any]) -> str:
    host, cfg = report["machine"], report["config"]
    windows = [Window(**w) for w in report["windows"]]
    profiles = report["profiles"]
    client = (
        f"{min(w.client_cores for w in windows):.2f}-{max(w.client_cores for w in windows):.2f}"
    )
    profiled = (
        f"""

Where the samples fall, by owning package (py-spy at {cfg["rate"]} Hz over each endpoint's
own profiled window, idle threads left out; a standard-library leaf counts for the library
that called it). *Sampled ms/req* is samples / rate / requests: a thread counts as busy while
it runs **or waits for a CPU**, so where it exceeds the metered CPU above, the excess is
waiting after wake-ups (socket writes to PostgreSQL and Redis, the loop's own) on a shared box:

{package_table(profiles)}

Top functions by self time, per endpoint:

{function_tables(profiles)}"""
        if profiles
        else ""
    )
    return f"""### Command

```sh
{report["command"]}
```

### Machine

{harness.machine_line(host)}; PostgreSQL, Redis and the load generator on the same box
(the generator used {client} cores). 1-minute load average at start:
{host["load_average_1m_at_start"]}.

### Date

{report["date"]}; `pamtalk serve --workers {cfg["workers"]}` on PostgreSQL + Redis, local
serving backend; per endpoint {cfg["duration_s"]:g} s measured after {cfg["warmup_s"]:g} s
warm-up, {cfg["concurrency"]} closed-loop connections. CPU per request: the process's CPU
time over the window / the requests answered in it; PostgreSQL and Redis: all their
processes (other databases' work counts too); PG commits / rollbacks: this database's
transactions (`pg_stat_database`); writes / reads: the server's write and read system calls
(`/proc/PID/io`), one per message sent or received: HTTP, Redis and PostgreSQL round trips.

### Results

{summary_table(windows)}{profiled}"""


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per window")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured s per window")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop connections")
    parser.add_argument("--identities", type=int, default=40, help="buyers and farmers each")
    parser.add_argument("--only", action="append", help="this endpoint only (repeatable)")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy windows")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="pamtalk_cpu")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: render this saved cpu.json's section"
    )
    return parser.parse_args(argv)


async def measure(
    args: argparse.Namespace, url: str, pid: int, data: prepare.Fixtures
) -> tuple[list[Window], dict[str, dict[str, Any]]]:
    names = args.only or [*(e.name for e in MIX), MIX_NAME]
    windows, profiles = [], {}
    for i, name in enumerate(names):
        harness.say(f"[cpu] {name}: metered ...")
        window, _ = await run_window(name, url, pid, data, args, args.seed + i)
        windows.append(window)
        harness.say(
            f"[cpu]   {window.req_per_s:.0f} req/s, {window.server_cpu_ms:.2f} ms CPU/req, "
            f"{window.errors} errors {window.error_kinds or ''}"
        )
        if not args.no_profile:
            harness.say(f"[cpu] {name}: profiled ...")
            path, requests = await profile_window(name, url, pid, data, args, args.seed + 100 + i)
            profiles[name] = summarise(path, requests, args.rate)
    return windows, profiles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        docs.check_section(SECTION)
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        return publish(report, write=args.write)
    args.out.mkdir(parents=True, exist_ok=True)
    host = harness.machine()
    models = args.out / "mlflow"
    env = loadtest.server_env(args, models)
    prepare_models = [sys.executable, "-c", loadtest.PREPARE_MODELS, str(models)]
    harness.run_step("models (tiny champions)", prepare_models, env)
    asyncio.run(harness.recreate_database(args.pg_url, args.db_name))
    asyncio.run(harness.flush_redis(args.redis_url))
    try:
        harness.run_step("pamtalk init", [str(harness.BIN / "pamtalk"), "init"], env)
        log = args.out / "server.log"
        with harness.pamtalk_serve(env, log, workers=1, timeout=READY_TIMEOUT_S) as (url, proc):
            data = prepare.fixtures(url, args.identities, PASSWORD, harness.say)
            try:
                windows, profiles = asyncio.run(measure(args, url, proc.pid, data))
            finally:
                prepare.revoke(url, data.buyers + data.farmers)
    finally:
        asyncio.run(harness.recreate_database(args.pg_url, args.db_name, create=False))
    report = {
        "benchmark": "cpu",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "machine": host,
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "workers": 1,
            "rate": args.rate,
        },
        "windows": [asdict(w) for w in windows],
        "profiles": profiles,
    }
    harness.write_json(args.out / "cpu.json", report)
    return publish(report, write=args.write)


def publish(report: dict[str, Any], *, write: bool) -> int:
    """Prints the section (and writes it with ``write``); 1 if any window had errors."""
    print(docs_section(report))
    if write:
        docs.write_section(SECTION, docs_section(report))
        harness.say(f"updated: {docs.DOCS.relative_to(harness.ROOT)}")
    return 1 if any(w["errors"] for w in report["windows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
