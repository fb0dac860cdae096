"""The nightly batch job under faults: the broker connection lost mid-job, the broker node
crashed mid-job, and PostgreSQL restarted mid-chunk. The job must complete by itself with
exactly the planned rows.

Each scenario starts its own PostgreSQL (tests/chaos/postgres.py), its own RabbitMQ node
(tests/chaos/rabbitmq.py), a TCP forwarder between the workers and that node
(tests/chaos/tcp_proxy.py), tiny champion models in its own MLflow sqlite store, two
``pamtalk worker`` processes, and the job the way operators start it,
``pamtalk batch score --date D --wait``. Every process carries the scenario's token in its
environment; the verdict checks that none is left afterwards.

``requests`` counts the job's chunks; ``recovery_s`` runs from the component being back to the
first chunk done that was neither done nor in flight when the fault came (delivered after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil

from bench import harness
from pamtalk.batching import jobs
from pamtalk.models.contract import DEMAND_HORIZON
from pamtalk.registry import defaults, store
from pamtalk.settings import Settings
from tests.chaos.postgres import Postgres
from tests.chaos.rabbitmq import RabbitMQ
from tests.chaos.tcp_proxy import Proxy

if TYPE_CHECKING:  # scenarios.py imports this module to list its scenarios
    from tests.chaos.scenarios import Verdict

RUN_DATE = date(2026, 11, 30)
JOB_BOUND_S = 90.0  # the job ends within this long after the fault, or the verdict fails
# InternalClientError: a connection whose query the server's shutdown cut mid-way.
DB_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


@dataclass(frozen=True)
class Shape:
    farms: int = 60
    demand_chunk: int = 8  # 510 crop x region series: 64 demand chunks
    esg_chunk: int = 4
    workers: int = 2  # `pamtalk worker --concurrency 1` each
    fault_at: float = 0.25  # the fault once this share of the chunks is done
    outage_s: float = 5.0
    database_wait_s: float = 600.0  # PAMTALK_BATCH_DATABASE_WAIT_S (the default)


@dataclass
class BatchStack:
    folder: Path
    postgres: Postgres
    broker: RabbitMQ
    proxy: Proxy
    env: dict[str, str]  # the workers' and the CLI's
    token: str
    timings: dict[str, float]

    def leftovers(self) -> list[str]:
        """Every process this stack started that is still there."""
        found = [f"tagged {pid}" for pid in {*harness.tagged_pids(self.token), *self.broker.pids()}]
        found += [f"child {p.pid}" for p in psutil.Process().children(recursive=True)]
        for p in psutil.process_iter(["cmdline"]):
            if any(str(self.postgres.folder) in part for part in p.info["cmdline"] or ()):
                found.append(f"postgres {p.pid}")
        return found


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMTALK_", "MLFLOW_"))}
    return env | {harness.TOKEN_VARIABLE: token}


def _champions(folder: Path) -> str:
    """An MLflow sqlite store in ``folder`` with tiny champions of both models, trained on
    first use (the scenarios of one run share it: the workers only read it)."""
    uri = f"sqlite:///{folder}/mlflow.db"
    settings = Settings(mlflow_tracking_uri=uri)
    client = store.connect(settings)
    defaults.ensure_champions(client, settings, folder / "train", say=lambda _: None, tiny=True)
    return uri


@contextlib.contextmanager
def batch_stack(folder: Path, models: Path, shape: Shape) -> Iterator[BatchStack]:
    """Migrated and seeded PostgreSQL, champions in ``models``, a RabbitMQ node behind the
    proxy, and ``shape.workers`` workers that said they are ready; all stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    token = f"batch-{uuid.uuid4().hex}"
    postgres = Postgres()
    broker = RabbitMQ()
    proxy = Proxy(0, folder / "proxy.log", _env(token))
    try:
        postgres.start()
        timings = {"rabbitmq_start_s": round(broker.start(), 2)}
        proxy.upstream = broker.port
        proxy.start()
        started = time.monotonic()
        store_uri = _champions(models)
        timings["models_s"] = round(time.monotonic() - started, 1)
        env = _env(token) | {
            "PAMTALK_ENV": "dev",
            "PAMTALK_DATABASE_URL": postgres.url,
            "PAMTALK_MLFLOW_TRACKING_URI": store_uri,
            "PAMTALK_MODEL_WATCH_INTERVAL": "0",
            "PAMTALK_CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//",
            "PAMTALK_BATCH_DEMAND_CHUNK": str(shape.demand_chunk),
            "PAMTALK_BATCH_ESG_CHUNK": str(shape.esg_chunk),
            "PAMTALK_BATCH_DATABASE_WAIT_S": str(shape.database_wait_s),
        }
        pamtalk = str(harness.BIN / "pamtalk")
        harness.run_step("migrate", [pamtalk, "db", "upgrade"], env)
        seed = ["db", "seed", "--farms", str(shape.farms), "--transactions", "600", "--days", "60"]
        harness.run_step("seed", [pamtalk, *seed], env)
        with contextlib.ExitStack() as workers:
            logs = [folder / f"worker{n}.log" for n in range(shape.workers)]
            for n, log in enumerate(logs):
                command = [pamtalk, "worker", "--concurrency", "1", "--loglevel", "INFO"]
                command += ["--hostname", f"batch{n}@%h"]  # two nodes on one host
                workers.enter_context(harness.process_group(command, env, log, grace=15))
            _wait_ready(logs, within=90)
            yield BatchStack(folder, postgres, broker, proxy, env, token, timings)
    finally:
        proxy.kill()
        harness.kill_tagged(token)
        broker.destroy()
        postgres.destroy()


def _wait_ready(logs: list[Path], within: float) -> None:
    deadline = time.monotonic() + within
    while not all(log.exists() and " ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            tails = "\n".join(harness.log_tail(log, 20) for log in logs)
            raise RuntimeError(f"workers not ready in {within} s:\n{tails}")
        time.sleep(0.2)


# --- watching the job from the database ---------------------------------------------------


@dataclass
class Progress:
    """The job's chunks, polled every 0.1 s: when each was first seen done. Keeps polling
    through the database's own outage."""

    dsn: str
    job_id: int | None = None
    total: int = 0
    done_at: dict[int, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return len(self.done_at)

    async def follow(self, until: Callable[[], bool]) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not until():
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, timeout=1)
                    await self._poll(conn)
                except DB_ERRORS:
                    if conn is not None:
                        conn.terminate()  # unusable now; a new one next time
                    conn = None  # the database is down: look again next time
                await asyncio.sleep(0.1)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()

    async def _poll(self, conn: asyncpg.Connection) -> None:
        if self.job_id is None:
            job = await conn.fetchrow(
                "SELECT id, chunks_total FROM batch_jobs WHERE run_date = $1", RUN_DATE
            )
            if job is None:
                return
            self.job_id, self.total = job["id"], job["chunks_total"]
        rows = await conn.fetch(
            "SELECT index FROM batch_chunks WHERE job_id = $1 AND status = 'completed'",
            self.job_id,
        )
        now = time.monotonic()
        for r in rows:
            self.done_at.setdefault(r["index"], now)


async def _in_flight(conn: asyncpg.Connection, job_id: int) -> list[int]:
    """Chunks a worker has started and not finished."""
    rows = await conn.fetch(
        "SELECT index FROM batch_chunks WHERE job_id = $1 AND attempts > 0 "
        "AND status <> 'completed'",
        job_id,
    )
    return [r["index"] for r in rows]


async def _unstarted(dsn: str, job_id: int) -> list[int]:
    """Chunks no worker has started yet: those done later were delivered after the fault."""
    conn = await _connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT index FROM batch_chunks WHERE job_id = $1 AND attempts = 0", job_id
        )
    finally:
        await conn.close()
    return [r["index"] for r in rows]


async def _connect(dsn: str, within: float = 30.0) -> asyncpg.Connection:
    """A connection, waiting for a database that is starting up."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=2)
        except DB_ERRORS:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _until(done: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- the faults -----------------------------------------------------------------------------

# A fault: given the stack, the job's id and the outage's length, returns its timeline
# (time.monotonic(): "stopped", "back") and what it saw ("in_flight": chunk indexes).
# "unstarted" (the chunks no worker had begun when the component was back) is added after.
Fault = Callable[[BatchStack, int, float], Awaitable[dict[str, Any]]]


async def cut_broker(stack: BatchStack, job_id: int, outage_s: float) -> dict[str, Any]:
    """The network between the workers and RabbitMQ goes: the proxy is SIGKILLed (every
    connection through it closes, new ones are refused) and comes back ``outage_s`` later.
    The broker itself lives on, so it gives back what the lost connections had unacked."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        stopped = time.monotonic()
        stack.proxy.kill()
        timeline: dict[str, Any] = {"stopped": stopped, "in_flight": await _in_flight(conn, job_id)}
    finally:
        await conn.close()
    await asyncio.sleep(max(0.0, stopped + outage_s - time.monotonic()))
    await asyncio.to_thread(stack.proxy.start)
    timeline["back"] = time.monotonic()
    return timeline


async def crash_broker(stack: BatchStack, job_id: int, outage_s: float) -> dict[str, Any]:
    """The RabbitMQ node itself crashes (every process SIGKILLed) and boots again from its
    data folder ``outage_s`` later. The job's messages live only in its durable queue: what
    was published (persistent, confirmed) and not yet acknowledged must come back with it."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        stopped = time.monotonic()
        await asyncio.to_thread(stack.broker.crash)
        timeline: dict[str, Any] = {"stopped": stopped, "in_flight": await _in_flight(conn, job_id)}
    finally:
        await conn.close()
    await asyncio.sleep(max(0.0, stopped + outage_s - time.monotonic()))
    timeline["rabbitmq_boot_s"] = round(await asyncio.to_thread(stack.broker.start), 2)
    timeline["back"] = time.monotonic()
    return timeline


_WRITING = (
    "state = 'active' AND (query ILIKE 'INSERT INTO demand_forecasts%' OR query ILIKE "
    "'INSERT INTO esg_assessments%' OR query ILIKE 'COPY%' OR query ILIKE 'UPDATE batch_%')"
)


async def restart_database(stack: BatchStack, job_id: int, outage_s: float) -> dict[str, Any]:
    """PostgreSQL stopped with ``pg_ctl stop -m fast`` (every session terminated, its open
    transaction rolled back) at a moment a worker is writing a chunk's results, or failing
    that within 3 s, while one holds a chunk's transaction open; started again ``outage_s``
    after the stop began."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    caught = "open transaction"
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if await conn.fetchval(f"SELECT count(*) FROM pg_stat_activity WHERE {_WRITING}"):
                caught = "writing results"
                break
            await asyncio.sleep(0.005)
        open_transactions = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE xact_start IS NOT NULL "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        in_flight = await _in_flight(conn, job_id)
    finally:
        await conn.close()
    timeline: dict[str, Any] = {
        "in_flight": in_flight,
        "caught": caught,
        "open_transactions": open_transactions,
        "stopped": time.monotonic(),
    }
    await asyncio.to_thread(stack.postgres.stop)
    timeline["down"] = time.monotonic()
    await asyncio.sleep(max(0.0, timeline["stopped"] + outage_s - time.monotonic()))
    await asyncio.to_thread(stack.postgres.start)
    timeline["back"] = time.monotonic()
    return timeline


# --- a run and its verdict ------------------------------------------------------------------


async def _run_job(stack: BatchStack, shape: Shape, fault: Fault, verdict: Verdict) -> None:
    """``pamtalk batch score --wait`` with ``fault`` once ``shape.fault_at`` of the chunks
    are done; fills in the verdict."""
    progress = Progress(stack.postgres.dsn)
    log = stack.folder / "batch-score.log"
    command = [
        *(str(harness.BIN / "pamtalk"), "batch", "score"),
        *("--date", RUN_DATE.isoformat(), "--wait"),
    ]
    started = time.monotonic()
    ended = False
    with harness.process_group(command, stack.env, log, grace=5) as cli:
        follower = asyncio.create_task(progress.follow(lambda: ended))
        try:
            ready = await _until(
                lambda: progress.total > 0 and progress.done >= shape.fault_at * progress.total,
                within=90,
            )
            if not ready or progress.job_id is None:
                verdict.problems.append(f"no progress before the fault: {harness.log_tail(log)}")
                return
            verdict.measured["done_at_fault"] = f"{progress.done}/{progress.total}"
            timeline = await fault(stack, progress.job_id, shape.outage_s)
            timeline["unstarted"] = await _unstarted(stack.postgres.dsn, progress.job_id)
            finished = await _until(lambda: cli.poll() is not None, within=JOB_BOUND_S)
            verdict.measured["cli_s"] = round(time.monotonic() - started, 1)
            verdict.measured["cli_said"] = harness.log_tail(log, 1)
            if not finished:
                verdict.problems.append(f"the job did not end within {JOB_BOUND_S} s of the fault")
            elif cli.returncode != 0:
                verdict.problems.append(
                    f"pamtalk batch score exited {cli.returncode}: {harness.log_tail(log, 6)}"
                )
            await asyncio.sleep(0.3)  # the follower's last look
        finally:
            ended = True
            await follower
    back, stopped = timeline["back"], timeline["stopped"]
    later = set(timeline["unstarted"])
    first = min((t for i, t in progress.done_at.items() if i in later), default=None)
    verdict.recovery_s = None if first is None else round(first - back, 2)
    verdict.measured |= {
        "outage_s": round(back - stopped, 2),
        "in_flight_at_fault": len(timeline["in_flight"]),
        "done_during_outage": sum(stopped <= t < back for t in progress.done_at.values()),
        **{k: v for k, v in timeline.items() if k in ("caught", "open_transactions")},
    }
    logs = "\n".join(p.read_text(errors="replace") for p in stack.folder.glob("worker*.log"))
    verdict.measured |= {
        "outage_waits": logs.count("database unreachable"),
        "requeued_unrecorded": logs.count("back to the queue"),
    }
    await _check_rows(stack.postgres.dsn, progress.job_id, verdict)


async def _check_rows(dsn: str, job_id: int, verdict: Verdict) -> None:
    """The stored rows against the plan, chunk by chunk: lost, duplicated, half-written;
    and the chunks' attempts (the retries the job's chunk records show)."""
    conn = await _connect(dsn)
    try:
        job = await conn.fetchrow("SELECT * FROM batch_jobs WHERE id = $1", job_id)
        chunks = await conn.fetch(
            "SELECT index, kind, items, status, rows_written, attempts FROM batch_chunks "
            "WHERE job_id = $1 ORDER BY index",
            job_id,
        )
        farms = await conn.fetch("SELECT id FROM farms WHERE status = 'active'")
        by_series = await conn.fetch(
            "SELECT crop || ':' || region AS s, count(*) AS n, "
            "count(DISTINCT (target_date, model_version)) AS k FROM demand_forecasts "
            "WHERE run_date = $1 GROUP BY 1",
            RUN_DATE,
        )
        by_farm = await conn.fetch(
            "SELECT farm_id, count(*) AS n, count(DISTINCT model_version) AS k "
            "FROM esg_assessments WHERE run_date = $1 GROUP BY 1",
            RUN_DATE,
        )
    finally:
        await conn.close()
    active = {r["id"] for r in farms}
    series = {r["s"]: (r["n"], r["k"]) for r in by_series}
    scored = {r["farm_id"]: (r["n"], r["k"]) for r in by_farm}
    planned = len(jobs.every_series()) * DEMAND_HORIZON + len(active)
    stored = sum(n for n, _ in (*series.values(), *scored.values()))
    keys = sum(k for _, k in (*series.values(), *scored.values()))
    verdict.lost = sum(DEMAND_HORIZON - min(DEMAND_HORIZON, series.get(s, (0, 0))[1])
                       for s in jobs.every_series())  # fmt: skip
    verdict.lost += sum(1 for farm in active if farm not in scored)
    verdict.duplicated = stored - keys + max(0, keys - planned)
    not_whole = []
    for c in chunks:
        items = json.loads(c["items"]) if isinstance(c["items"], str) else c["items"]
        if c["kind"] == "demand":
            expected = len(items) * DEMAND_HORIZON
            have = sum(series.get(s, (0, 0))[0] for s in items)
        else:
            expected = sum(1 for farm in items if farm in active)
            have = sum(scored.get(farm, (0, 0))[0] for farm in items)
        if c["status"] != "completed" or c["rows_written"] != expected or have != expected:
            not_whole.append((c["index"], c["status"], c["rows_written"], have, expected))
    attempts = [c["attempts"] for c in chunks]
    verdict.requests = len(chunks)
    verdict.measured |= {
        "job": f"{job['status']} {job['chunks_done']}/{job['chunks_total']} chunks",
        "planned_rows": planned,
        "stored_rows": stored,
        "job_rows_written": job["rows_written"],
        "chunks_retried": sum(a > 1 for a in attempts),
        "chunk_attempts": sum(attempts),
    }
    if job["status"] != "completed":
        verdict.problems.append(f"the job ended {job['status']}: {job['error']}")
    if not job["rows_written"] == stored == planned:
        verdict.problems.append(
            f"rows: planned {planned}, the job says {job['rows_written']}, stored {stored}"
        )
    if not_whole:
        verdict.problems.append(
            f"chunks not whole (index, status, said, stored, planned): {not_whole[:5]}"
        )
    # A chunk's attempt is recorded in its own transaction, so a fault that cut only
    # uncommitted attempts leaves none; the chunks in flight at the fault say it met the job.
    if not any(a > 1 for a in attempts) and not verdict.measured["in_flight_at_fault"]:
        verdict.problems.append("no chunk was retried: the fault did not meet the job")


def _scenario(name: str, fault: Fault, folder: Path, shape: Shape) -> Verdict:
    from tests.chaos.scenarios import RECOVERY_BOUND_S, Verdict

    # The bound: a redelivered or retried chunk waits for Celery's retry countdown (1, 2,
    # 4 s) on top of the reconnection.
    verdict = Verdict(name, recovery_bound_s=2 * RECOVERY_BOUND_S)
    with batch_stack(folder / name, folder / "batch_models", shape) as stack:
        verdict.measured |= stack.timings
        asyncio.run(_run_job(stack, shape, fault, verdict))
    leftovers = stack.leftovers()
    verdict.measured["leftover_processes"] = leftovers
    if leftovers:
        verdict.problems.append(f"processes left behind: {leftovers}")
    return verdict.judge()


def broker_connection_lost(folder: Path, shape: Shape = Shape()) -> Verdict:
    """The workers' RabbitMQ connections cut mid-job for a few seconds (the broker lives)."""
    return _scenario("broker_connection_lost", cut_broker, folder, shape)


def broker_node_crash(folder: Path, shape: Shape = Shape()) -> Verdict:
    """The RabbitMQ node crashes mid-job (SIGKILL) and boots again from its data a few
    seconds later."""
    return _scenario("broker_node_crash", crash_broker, folder, shape)


def database_outage_past_wait(
    folder: Path, shape: Shape = Shape(outage_s=30.0, database_wait_s=2.0)
) -> Verdict:
    """PostgreSQL down for longer than the workers wait for it: 30 s against a 2 s
    ``PAMTALK_BATCH_DATABASE_WAIT_S``, so chunks run out of waiting and of retries (2 s each,
    then 1 + 2 + 4 s) while it is still down, and cannot record their failure either."""
    return _scenario("database_outage_past_wait", restart_database, folder, shape)


def database_restart_mid_chunk(folder: Path, shape: Shape = Shape(outage_s=12.0)) -> Verdict:
    """PostgreSQL stopped (``pg_ctl stop -m fast``) mid-chunk and started again 12 s later:
    longer than a chunk's three quick retries (1 + 2 + 4 s) last."""
    return _scenario("database_restart_mid_chunk", restart_database, folder, shape)
