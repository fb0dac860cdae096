"""API throughput benchmark: cached farm listing and idempotent transaction writes.

What it measures
    Against a real deployment shape (PostgreSQL + Redis, ``pamtalk serve --workers 2``):

    * ``GET /v1/farms?limit=20`` and ``GET /v1/farms?region=<r>&limit=20``: the list is
      served from the Redis read-through cache after the first request (the warm-up).
    * ``POST /v1/transactions``: every request carries a unique ``Idempotency-Key`` and a
      valid body (a seeded farm, one of its crops, a decimal ``quantity_kg`` and an integer
      ``unit_price_krw``); each one inserts a transaction and upserts the daily demand row.

    For each scenario: requests completed in the measuring window, errors (any status other
    than the expected one, or a transport error), throughput in req/s and latency p50/p95/p99.

How the load is generated
    Closed loop: ``--concurrency`` asyncio workers, each sending its next request as soon as
    the previous one is answered, over ``--concurrency`` keep-alive connections. By default
    each worker has its own ``httpx.AsyncClient`` with a pool of one connection: one shared
    client whose pool holds all the connections (``--shared-client``) spends several times
    more client CPU per request (encode/httpx#3215) and, on a 2-core box, measured the
    client rather than the server (~320 req/s for ``/healthz`` against ~1,200 per-worker).
    Each scenario runs ``--warmup`` seconds unmeasured (this also fills the cache), then
    ``--duration`` seconds measured: a request counts if it ends inside the window, and its
    latency is timed with ``time.perf_counter``; req/s is those requests over the window.
    The client runs on the same machine as the server, database and cache and competes with
    them for CPU; the JSON records how many cores it used, and the load average at start
    (other work on the box skews the numbers: run it on a quiet machine).

How to run
    Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth) and Redis on
    127.0.0.1:6379. From the repository root::

        .venv/bin/python bench/api.py [--duration 20] [--warmup 2] [--concurrency 32]
                                      [--workers 2] [--region gyeongbuk] [--write]

    It drops and recreates the database ``pamtalk_bench`` (``--db-name``), flushes Redis
    db 14 (``--redis-url``), runs ``pamtalk init`` (migrate, seed demo data, register a
    random admin key), starts ``pamtalk serve`` on a free port, waits for ``/readyz``, runs
    the scenarios, then always stops the server and drops the database. It prints a
    Markdown table and writes it as JSON to ``bench/results/api.json``; the server's log
    goes to ``bench/results/api-server.log``. ``--write`` also replaces its generated part
    of docs/benchmarks.md (between ``<!-- BEGIN bench/api.py -->`` and its END line). Takes
    about (warmup + duration) x 3 plus ~20 s of setup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness

RESULTS = harness.RESULTS
SECTION = docs.section_name(__file__)
BUYER_EMAIL = "buyer1@pamtalk.local"
DEMO_PASSWORD = "pamtalk-demo"
READY_TIMEOUT_S = 60.0
BUSY_LOAD_AVERAGE = 0.5  # 1-minute load average above which other work skews results

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Scenario:
    name: str
    send: Send
    expected_status: int


@dataclass(frozen=True)
class Result:
    scenario: str
    requests: int
    errors: int
    req_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_kinds: dict[str, int]
    client_cpu_cores: float  # the load generator's own CPU use over the window


@dataclass(frozen=True)
class Load(harness.Load):
    shared_client: bool = False


# --- setup and teardown -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="measured s per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s per scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop workers")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--region", default="gyeongbuk", help="region filter for the GET")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="pamtalk_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--output", type=Path, default=RESULTS / "api.json")
    parser.add_argument(
        "--shared-client",
        action="store_true",
        help="one httpx client whose pool holds all connections (slower client, see docs)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for request bodies")
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    return parser.parse_args(argv)


def server_env(args: argparse.Namespace, admin_key: str, metrics_dir: str) -> dict[str, str]:
    pg_host = args.pg_url.removeprefix("postgresql://")
    return {
        **os.environ,
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": f"postgresql+asyncpg://{pg_host}/{args.db_name}",
        "PAMTALK_REDIS_URL": args.redis_url,
        "PAMTALK_ADMIN_API_KEY": admin_key,
        "PAMTALK_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        # The server's throughput is measured from one API key: the per-user rate limit
        # (docs/security.md) is off, or it would be what this measures.
        "PAMTALK_RATE_LIMITS_ENABLED": "0",
    }


# --- fixtures through the API ---------------------------------------------------------------


async def buyer_api_key(client: httpx.AsyncClient) -> str:
    login = await client.post(
        "/v1/auth/login", json={"email": BUYER_EMAIL, "password": DEMO_PASSWORD}
    )
    login.raise_for_status()
    token = login.json()["token"]
    created = await client.post(
        "/v1/auth/api-keys", json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}
    )
    created.raise_for_status()
    key: str = created.json()["key"]
    return key


async def farm_offers(client: httpx.AsyncClient, api_key: str) -> list[tuple[int, str]]:
    """(farm id, crop) for every crop of the first 200 active farms."""
    page = await client.get("/v1/farms", params={"limit": 200}, headers={"X-API-Key": api_key})
    page.raise_for_status()
    return [(farm["id"], crop) for farm in page.json()["items"] for crop in farm["crops"]]


# --- scenarios ------------------------------------------------------------------------------


def list_farms(api_key: str, params: dict[str, str | int]) -> Send:
    headers = {"X-API-Key": api_key}

    def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.get("/v1/farms", params=params, headers=headers)

    return send


def create_transactions(api_key: str, offers: list[tuple[int, str]], seed: int) -> Send:
    rng = random.Random(seed)
    run_id = secrets.token_hex(4)
    counter = itertools.count()

    def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        farm_id, crop = rng.choice(offers)
        body = {
            "farm_id": farm_id,
            "crop": crop,
            "quantity_kg": f"{rng.uniform(1, 500):.1f}",
            "unit_price_krw": rng.randint(500, 15_000),
        }
        headers = {"X-API-Key": api_key, "Idempotency-Key": f"bench-{run_id}-{next(counter)}"}
        return client.post("/v1/transactions", json=body, headers=headers)

    return send


def scenarios(args: argparse.Namespace, key: str, offers: list[tuple[int, str]]) -> list[Scenario]:
    return [
        Scenario("GET /v1/farms?limit=20 (cached)", list_farms(key, {"limit": 20}), 200),
        Scenario(
            f"GET /v1/farms?region={args.region}&limit=20 (cached)",
            list_farms(key, {"region": args.region, "limit": 20}),
            200,
        ),
        Scenario("POST /v1/transactions", create_transactions(key, offers, args.seed), 201),
    ]


# --- load generator -------------------------------------------------------------------------


async def worker(
    client: httpx.AsyncClient,
    scenario: Scenario,
    window: tuple[float, float],
    samples: harness.Samples,
) -> None:
    """Sends requests back to back until the window closes; records those ending inside it."""
    while time.perf_counter() < window[1]:
        began = time.perf_counter()
        error: str | None = None
        try:
            response = await scenario.send(client)
            if response.status_code != scenario.expected_status:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        samples.record(began, time.perf_counter(), window, error)


async def open_clients(
    stack: contextlib.AsyncExitStack, base_url: str, load: Load
) -> list[httpx.AsyncClient]:
    """One client per worker (a pool of one connection each), or one client whose pool has
    a connection per worker. Either way ``concurrency`` connections; the shared pool costs
    the client far more CPU per request (encode/httpx#3215)."""
    pools, size = (1, load.concurrency) if load.shared_client else (load.concurrency, 1)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    clients = [
        await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)
        )
        for _ in range(pools)
    ]
    return [clients[i % pools] for i in range(load.concurrency)]


async def run_scenario(
    base_url: str, scenario: Scenario, load: Load
) -> tuple[Result, harness.Samples]:
    samples = harness.Samples()
    async with contextlib.AsyncExitStack() as stack:
        clients = await open_clients(stack, base_url, load)
        window = load.window()
        cpu = asyncio.create_task(harness.CpuMeter().over(window))  # the client's, "self"
        await asyncio.gather(*(worker(c, scenario, window, samples) for c in clients))
    return summarize(scenario.name, samples, load.duration, (await cpu)["self"]), samples


def summarize(name: str, samples: harness.Samples, duration: float, cpu: float) -> Result:
    ordered = sorted(samples.latencies)
    errors = sum(samples.errors.values())
    return Result(
        scenario=name,
        requests=len(ordered) + errors,
        errors=errors,
        req_per_s=round((len(ordered) + errors) / duration, 1),
        p50_ms=round(harness.percentile(ordered, 50) * 1000, 2),
        p95_ms=round(harness.percentile(ordered, 95) * 1000, 2),
        p99_ms=round(harness.percentile(ordered, 99) * 1000, 2),
        error_kinds=dict(samples.errors),
        client_cpu_cores=round(cpu, 2),
    )


# --- report ---------------------------------------------------------------------------------


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| scenario | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| `{r.scenario}` | {r.requests} | {r.errors} | {r.req_per_s:.1f} "
        f"| {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace, host: dict[str, Any], results: list[Result], notes: list[str]
) -> dict[str, Any]:
    return {
        "benchmark": "api",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "machine": host,
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "client": "one shared pool" if args.shared_client else "one client per worker",
            "uvicorn_workers": args.workers,
            "database": "postgresql",
            "cache": "redis",
        },
        "results": [asdict(r) for r in results],
        "table_markdown": markdown_table(results),
        "notes": notes,
    }


def general_notes(
    args: argparse.Namespace, host: dict[str, Any], results: list[Result], log: Path
) -> list[str]:
    cpu = ", ".join(f"{r.client_cpu_cores:.2f}" for r in results)
    log_lines = len(log.read_text().splitlines()) if log.exists() else 0
    notes = [
        f"client and server share {os.cpu_count()} CPUs: the load generator itself used "
        f"{cpu} cores in the scenarios above; {args.concurrency} closed-loop connections, "
        f"{args.workers} uvicorn workers",
        f"server log ({log.name}, level WARNING): {log_lines} lines",
    ]
    load = host["load_average_1m_at_start"]
    if load > BUSY_LOAD_AVERAGE:
        notes.append(f"the machine was busy at start (load average {load}): numbers are low")
    return notes


async def count_bench_transactions(pg_url: str, name: str) -> int:
    conn = await asyncpg.connect(f"{pg_url}/{name}")
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM transactions WHERE idempotency_key LIKE 'bench-%'"
        )
        return count
    finally:
        await conn.close()


async def farm_cache_counts(base_url: str) -> dict[str, float]:
    """The farm list's cache hits and misses so far, from the server's ``/metrics``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        text = (await client.get("/metrics")).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cache_requests_total{") and 'namespace="farms"' in line:
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


# --- main -----------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, base_url: str) -> tuple[list[Result], list[str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        key = await buyer_api_key(client)
        offers = await farm_offers(client, key)
    load = Load(args.concurrency, args.warmup, args.duration, args.shared_client)
    results, notes = [], []
    cache = await farm_cache_counts(base_url)
    for scenario in scenarios(args, key, offers):
        print(f"running {scenario.name} ...", file=sys.stderr)
        result, samples = await run_scenario(base_url, scenario, load)
        results.append(result)
        if scenario.expected_status == 200:
            before, cache = cache, await farm_cache_counts(base_url)
            delta = {k: int(v - before.get(k, 0.0)) for k, v in cache.items()}
            notes.append(f"farm list cache during {scenario.name} (with warm-up): {delta}")
        if scenario.expected_status == 201:
            stored = await count_bench_transactions(args.pg_url, args.db_name)
            notes.append(f"transactions: {samples.ok_total} answered 201, {stored} rows stored")
    return results, notes


def docs_section(report: dict[str, Any]) -> str:
    """The generated part of this benchmark's section of docs/benchmarks.md."""
    host, cfg = report["machine"], report["config"]
    cores = ", ".join(f"{r['client_cpu_cores']:.2f}" for r in report["results"])
    notes = "\n".join(f"- {note}" for note in report["notes"])
    return f"""### Command

```sh
{report["command"]}
```

### Machine

{harness.machine_line(host)}, PostgreSQL and Redis on the same box.
**Shared:** the load generator runs on the same cores as the {cfg["uvicorn_workers"]} uvicorn
workers, PostgreSQL and Redis; it used {cores} cores in the scenarios, so these are lower
bounds for the server alone. 1-minute load average at start: {host["load_average_1m_at_start"]}.

### Date

{report["date"]}; {cfg["duration_s"]:g} s measured after {cfg["warmup_s"]:g} s warm-up per
scenario, {cfg["concurrency"]} closed-loop connections ({cfg["client"]}).

### Results

{report["table_markdown"]}

Checks from the same run:

{notes}"""


async def prepare(args: argparse.Namespace) -> None:
    await harness.recreate_database(args.pg_url, args.db_name)
    await harness.flush_redis(args.redis_url)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        docs.check_section(SECTION)
    host = harness.machine() | {
        "note": "the load generator shares these CPUs with the server, PostgreSQL and Redis"
    }
    log = RESULTS / "api-server.log"
    try:
        asyncio.run(prepare(args))
        with tempfile.TemporaryDirectory(prefix="pamtalk-bench-metrics-") as metrics_dir:
            env = server_env(args, harness.random_key(), metrics_dir)
            harness.run_step("pamtalk init", [str(harness.BIN / "pamtalk"), "init"], env)
            RESULTS.mkdir(parents=True, exist_ok=True)
            serve = harness.pamtalk_serve(env, log, workers=args.workers, timeout=READY_TIMEOUT_S)
            with serve as (base_url, _):
                results, notes = asyncio.run(measure(args, base_url))
    finally:
        asyncio.run(harness.recreate_database(args.pg_url, args.db_name, create=False))
    notes += general_notes(args, host, results, log)
    report = build_report(args, host, results, notes)
    harness.write_json(args.output, report)
    print(markdown_table(results))
    print("".join(f"\n- {note}" for note in notes))
    print(f"\nwritten: {args.output}")
    if args.write:
        docs.write_section(SECTION, docs_section(report))
        print(f"updated: {docs.DOCS.relative_to(harness.ROOT)}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
