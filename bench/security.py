"""Login flood against a real server: is it shed, and do authenticated reads keep their pace?

What it does
    1. A scratch embedded deployment in a temporary folder (SQLite, the in-process cache,
       sessions and rate limits, no models): ``pamtalk db upgrade``, ``pamtalk db seed
       --farms 40 --transactions 2000``, ``pamtalk init --no-models``, then ``pamtalk serve``
       (one worker, the default limits of docs/security.md) on a free port.
    2. Quiet: authenticated reads (``GET /v1/farms?limit=20`` with an API key) paced at
       ``--read-rate`` per second (under the per-user limit) for ``--quiet`` seconds.
    3. Flood: the same reads, and after ``--lead`` seconds ``--flood`` unauthenticated
       logins (unknown emails, wrong passwords: each one costs an Argon2 hash if it gets
       that far) sent all at once from this one address. The reads that start between the
       first login sent and the last one answered are the "during the flood" sample.
    4. Prints the flood's answers by status and both samples' latencies side by side
       (median, p95, max), writes ``bench/results/security.json`` and, with ``--write``,
       its section of docs/benchmarks.md (between ``<!-- BEGIN bench/security.py -->`` and
       its END line).

    Exit status: 0 when the flood was mostly shed (more than half refused without a hash:
    429 from the per-address limit, or a fast 503 from the Argon2 cap or the worker's
    in-flight limit), 429 its most common answer, and the reads during it kept a median
    under 50 ms with no errors; 1 otherwise. Not a timed test: run it by hand.

How to run
    From the repository root (nothing but this repository's environment is needed)::

        .venv/bin/python bench/security.py [--flood 80] [--read-rate 30] [--quiet 10]
                                           [--lead 2] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness

SECTION = docs.section_name(__file__)
RESULTS = harness.RESULTS / "security.json"
PAMTALK = str(harness.BIN / "pamtalk")
READ_PATH = "/v1/farms?limit=20"
MEDIAN_LIMIT_MS = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=80, help="logins sent at once")
    parser.add_argument("--read-rate", type=float, default=30.0, help="reads per second")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of reads alone")
    parser.add_argument("--lead", type=float, default=2.0, help="reads before the flood, s")
    parser.add_argument("--tail", type=float, default=2.0, help="reads after the flood, s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    return parser.parse_args(argv)


@dataclass
class Reads:
    """(start, latency s, status) of each paced read."""

    samples: list[tuple[float, float, int]]

    def between(self, start: float, end: float) -> list[float]:
        return sorted(lat for began, lat, _ in self.samples if start <= began <= end)

    def errors(self) -> int:
        return sum(status != 200 for _, _, status in self.samples)


@dataclass
class Latency:
    requests: int
    median_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies: list[float]) -> Latency:
        ms = sorted(x * 1000 for x in latencies)
        return cls(
            len(ms),
            round(statistics.median(ms), 1) if ms else float("nan"),
            round(harness.percentile(ms, 95), 1),
            round(ms[-1], 1) if ms else float("nan"),
        )


async def paced_reads(client: httpx.AsyncClient, key: str, rate: float, seconds: float) -> Reads:
    """Reads started every 1/rate s (each in its own task, so a slow one delays no other)."""

    async def one() -> tuple[float, float, int]:
        began = time.perf_counter()
        answer = await client.get(READ_PATH, headers={"X-API-Key": key})
        return began, time.perf_counter() - began, answer.status_code

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
    return Reads(list(await asyncio.gather(*tasks)))


async def login_flood(base_url: str, count: int) -> tuple[float, float, Counter[str]]:
    """``count`` logins at once on their own connections: (first sent, last answered,
    answers by status and error code)."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as client:

        async def one(i: int) -> str:
            body = {"email": f"flood{i}@example.kr", "password": f"guess-{i:04d}"}
            answer = await client.post("/v1/auth/login", json=body)
            return f"{answer.status_code} {answer.json()['error']['code']}"

        start = time.perf_counter()
        statuses = await asyncio.gather(*(one(i) for i in range(count)))
        return start, time.perf_counter(), Counter(statuses)


async def measure(args: argparse.Namespace, base_url: str, key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        for _ in range(20):  # warm the connection and the farm list cache
            await client.get(READ_PATH, headers={"X-API-Key": key})
        harness.say(f"quiet: {args.read_rate:g} reads/s for {args.quiet:g} s")
        quiet = await paced_reads(client, key, args.read_rate, args.quiet)
        await asyncio.sleep(1.0)
        harness.say(f"flood: {args.flood} logins at once, reads going on")
        seconds = args.lead + args.tail + 10.0

        async def flood_after_lead() -> tuple[float, float, Counter[str]]:
            await asyncio.sleep(args.lead)
            return await login_flood(base_url, args.flood)

        reads, (start, end, statuses) = await asyncio.gather(
            paced_reads(client, key, args.read_rate, seconds), flood_after_lead()
        )
    during = reads.between(start, end)
    return {
        "flood": {
            "logins": args.flood,
            "by_status": {str(k): v for k, v in sorted(statuses.items())},
            "shed_429_share": round(share(statuses, "429"), 3),
            "shed_share": round(share(statuses, "429") + share(statuses, "503"), 3),
            "seconds": round(end - start, 3),
        },
        "reads": {
            "quiet": asdict(Latency.of([lat for _, lat, _ in quiet.samples])),
            "during_flood": asdict(Latency.of(during)),
            "errors": quiet.errors() + reads.errors(),
        },
    }


def api_key(base_url: str, admin_key: str) -> str:
    """A buyer's key: made by the admin, so that the flood's address budget is untouched."""
    headers = {"X-API-Key": admin_key}
    with httpx.Client(base_url=base_url, timeout=30.0, headers=headers) as client:
        farms = client.get(READ_PATH)
        farms.raise_for_status()
        created = client.post("/v1/auth/api-keys", json={"name": "bench security"})
        created.raise_for_status()
        return str(created.json()["key"])


def share(statuses: Counter[str], status: str) -> float:
    return sum(n for answer, n in statuses.items() if answer.startswith(status)) / sum(
        statuses.values()
    )


def passed(results: dict[str, Any]) -> bool:
    during, flood = results["reads"]["during_flood"], results["flood"]
    most_common = max(flood["by_status"].items(), key=lambda item: item[1])[0]
    return bool(
        flood["shed_share"] > 0.5
        and most_common.startswith("429")
        and during["requests"] > 0
        and during["median_ms"] < MEDIAN_LIMIT_MS
        and results["reads"]["errors"] == 0
    )


def markdown_table(results: dict[str, Any]) -> str:
    quiet, during = results["reads"]["quiet"], results["reads"]["during_flood"]
    flood = results["flood"]
    statuses = ", ".join(f"{count} x {answer}" for answer, count in flood["by_status"].items())
    return "\n".join(
        [
            "| authenticated reads (`GET /v1/farms?limit=20`) | requests | median ms "
            "| p95 ms | max ms |",
            "|---|---:|---:|---:|---:|",
            f"| without the flood | {quiet['requests']} | {quiet['median_ms']} "
            f"| {quiet['p95_ms']} | {quiet['max_ms']} |",
            f"| during the flood | {during['requests']} | {during['median_ms']} "
            f"| {during['p95_ms']} | {during['max_ms']} |",
            "",
            f"Flood: {flood['logins']} logins at once from one address, answered in "
            f"{flood['seconds']} s: {statuses}; {flood['shed_share']:.0%} refused without a "
            f"hash ({flood['shed_429_share']:.0%} with 429). "
            f"Read errors: {results['reads']['errors']}.",
        ]
    )


def docs_section(report: dict[str, Any]) -> str:
    host = report["machine"]
    verdict = "passed" if report["passed"] else "FAILED"
    return f"""### Command

```sh
{report["command"]}
```

### Machine

{harness.machine_line(host)}; the server (one uvicorn worker, embedded: SQLite and the
in-process cache and limits), this client and the flood share these cores. 1-minute load
average at start: {host["load_average_1m_at_start"]}.

### Date

{report["date"]}; reads paced at {report["config"]["read_rate"]:g}/s with one API key.

### Results

{report["table_markdown"]}

Check (most of the flood refused without a hash, 429 its most common answer, median of the
reads during it < {MEDIAN_LIMIT_MS:g} ms, no read errors): {verdict}."""


def serve_env(folder: Path, admin_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMTALK_", "MLFLOW_"))}
    return env | {
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/pamtalk.db",
        "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        "PAMTALK_ADMIN_API_KEY": admin_key,
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        "PAMTALK_LOG_LEVEL": "WARNING",
        harness.TOKEN_VARIABLE: admin_key,  # anything the server leaves behind is found
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        docs.check_section(SECTION)
    host = harness.machine()
    admin_key = harness.random_key()
    with tempfile.TemporaryDirectory(prefix="pamtalk-bench-security-") as tmp:
        folder = Path(tmp)
        env = serve_env(folder, admin_key)
        harness.run_step("migrate", [PAMTALK, "db", "upgrade"], env)
        seed = [PAMTALK, "db", "seed", "--farms", "40", "--transactions", "2000"]
        harness.run_step("seed", seed, env)
        harness.run_step("init", [PAMTALK, "init", "--no-models"], env)
        with harness.pamtalk_serve(env, folder / "server.log", timeout=90) as (url, _):
            key = api_key(url, admin_key)
            results = asyncio.run(measure(args, url, key))
    report = {
        "benchmark": "security",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "machine": host,
        "config": {"read_rate": args.read_rate, "quiet_s": args.quiet, "flood": args.flood},
        "results": results,
        "passed": passed(results),
        "table_markdown": markdown_table(results),
    }
    harness.write_json(args.output, report)
    print(report["table_markdown"])
    print(f"\ncheck: {'passed' if report['passed'] else 'FAILED'}; written: {args.output}")
    if args.write:
        docs.write_section(SECTION, docs_section(report))
        print(f"updated: {docs.DOCS.relative_to(harness.ROOT)}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
