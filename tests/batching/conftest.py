"""Batch scoring fixtures: a seeded PostgreSQL database per module, a copy of the trained
model store, a broker (RabbitMQ or Redis, as a parameter) whose queues are emptied before and
after, and real ``pamtalk worker`` processes, each in its own process group so a test can
SIGKILL one whole and teardown never leaves one behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import kombu
import pytest
import redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk import queues
from pamtalk.batching import celery_app, jobs
from pamtalk.batching.context import BatchContext
from pamtalk.db.manage import seed_database, upgrade_database
from pamtalk.db.models import BatchChunk, BatchJob, JobStatus
from pamtalk.db.seed import SeedSize
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.models.contract import DEMAND_HORIZON
from pamtalk.settings import Settings
from tests import services
from tests.conftest import ModelStore

PAMTALK = str(Path(sys.executable).parent / "pamtalk")
SEED = SeedSize(farms=40, transactions=2000)
SERIES = len(jobs.every_series())  # 510 crop x region series
DEMAND_ROWS = SERIES * DEMAND_HORIZON  # 14,280 forecasts per run date
# Redis gives an unacknowledged task back after this many seconds (RabbitMQ does when the
# worker's connection drops): short, so that a killed worker's chunks come back in the test.
VISIBILITY_TIMEOUT = 5


def _redis_broker_url() -> str:
    """The test Redis, on database 14: tests that flush database 15 (the cache) keep off."""
    explicit = os.environ.get("PAMTALK_TEST_REDIS_BROKER_URL")
    if explicit:
        return explicit
    return urlunparse(urlparse(services.REDIS_URL)._replace(path="/14"))


BROKERS = {
    "rabbitmq": os.environ.get("PAMTALK_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "redis": _redis_broker_url(),
}


@dataclass(frozen=True)
class Broker:
    name: str
    url: str

    @property
    def port(self) -> int:
        return 6379 if self.url.startswith("redis") else 5672

    def celery(self) -> Any:
        """A Celery app of our configuration that sends to this broker (close it after)."""
        return queues.create_celery(
            Settings(celery_broker_url=self.url, celery_visibility_timeout=VISIBILITY_TIMEOUT)
        )

    def drained(self) -> bool:
        """Redis: no message of ours is queued or unacknowledged anywhere."""
        assert self.url.startswith("redis")
        client = redis.Redis.from_url(self.url)
        try:
            queued = sum(
                client.llen(key)
                for queue in queues.QUEUES
                for key in client.scan_iter(match=f"{queue}*")
            )
            return queued == 0 and client.hlen("unacked") == 0
        finally:
            client.close()

    def purge(self) -> None:
        """Leave nothing behind: queued chunks, and on Redis the unacknowledged ones too
        (they would come back to the next run's workers)."""
        if self.url.startswith("redis"):
            client = redis.Redis.from_url(self.url)
            try:
                client.flushdb()
            finally:
                client.close()
            return
        with kombu.Connection(self.url) as conn:
            for queue in queues.QUEUES:
                channel = conn.channel()
                try:
                    channel.queue_purge(queue)
                except conn.channel_errors:
                    pass  # never declared on this broker yet
                finally:
                    with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
                        channel.close()


@pytest.fixture(scope="module", params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    found = Broker(request.param, BROKERS[request.param])
    services.need(found.url, found.port, request.param)
    found.purge()
    yield found
    found.purge()


@dataclass
class Database:
    url: str
    engine: AsyncEngine

    async def job(self, job_id: int) -> BatchJob:
        async with create_session_factory(self.engine).write() as session:
            return await jobs.get(session, job_id)

    async def chunks(self, job_id: int) -> list[BatchChunk]:
        async with create_session_factory(self.engine).write() as session:
            found = await session.scalars(
                select(BatchChunk).where(BatchChunk.job_id == job_id).order_by(BatchChunk.index)
            )
            return list(found)

    async def value(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, run_date: date) -> Rows:
        """What is in the result tables for a run date."""
        demand = await self._one(
            "SELECT count(*), count(DISTINCT (crop, region, target_date, model_version)),"
            " count(DISTINCT (crop, region)), string_agg(DISTINCT model_version, ','),"
            " string_agg(DISTINCT batch_job_id::text, ',')"
            " FROM demand_forecasts WHERE run_date = :d",
            d=run_date,
        )
        esg = await self._one(
            "SELECT count(*), count(DISTINCT (farm_id, model_version)),"
            " string_agg(DISTINCT model_version, ','),"
            " string_agg(DISTINCT batch_job_id::text, ',')"
            " FROM esg_assessments WHERE run_date = :d",
            d=run_date,
        )
        return Rows(
            demand=demand[0],
            demand_keys=demand[1],
            series=demand[2],
            demand_versions=set((demand[3] or "").split(",")) - {""},
            esg=esg[0],
            esg_keys=esg[1],
            esg_versions=set((esg[2] or "").split(",")) - {""},
            job_ids={int(j) for j in f"{demand[4] or ''},{esg[3] or ''}".split(",") if j},
        )

    async def quiet(self, within: float = 10) -> None:
        """Wait until no other connection is in a statement: a killed worker's last COMMIT
        may still be under way on the server when its process is already gone."""
        deadline = time.monotonic() + within
        while await self.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state = 'active'"
        ):
            if time.monotonic() > deadline:
                pytest.fail("the database did not quieten down")
            await asyncio.sleep(0.05)

    async def active_farms(self) -> int:
        return int(await self.value("SELECT count(*) FROM farms WHERE status = 'active'"))

    async def _one(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).one()


@dataclass(frozen=True)
class Rows:
    demand: int
    demand_keys: int
    series: int
    demand_versions: set[str]
    esg: int
    esg_keys: int
    esg_versions: set[str]
    job_ids: set[int]

    @property
    def total(self) -> int:
        return self.demand + self.esg


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database for the module, migrated and seeded (small)."""
    url = await services.create_database()
    settings = Settings(database_url=url)
    await upgrade_database(settings)
    await seed_database(settings, SEED)
    engine = create_engine(settings)
    yield Database(url, engine)
    await engine.dispose()
    await services.drop_database(url)


@pytest.fixture(scope="module")
def registry_uri(model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    return model_store.copy(tmp_path_factory.mktemp("batching") / "store")


def batch_settings(database: Database, registry_uri: str, **update: Any) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        mlflow_tracking_uri=registry_uri,
        model_watch_interval=0,
        **update,
    )


def process_env(**values: str) -> dict[str, str]:
    """This environment without any PAMTALK_ setting of the caller's, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_")}
    env.update(values)
    return env


class Worker:
    """``pamtalk worker`` in a process group of its own (the main process and its pool)."""

    def __init__(self, env: dict[str, str], folder: Path, name: str, concurrency: int) -> None:
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [PAMTALK, "worker", "--concurrency", str(concurrency), "--loglevel", "INFO"],
                env=env,
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while " ready." not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"worker did not start:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole group: no warm shutdown, nothing acknowledged on the way out."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Workers:
    """The module's workers on one broker: one at a time, so a test that kills it knows who
    held its chunks."""

    def __init__(self, database: Database, registry_uri: str, broker: Broker, folder: Path):
        self.database, self.registry_uri, self.broker = database, registry_uri, broker
        self.folder = folder
        self.started: list[Worker] = []

    def env(self, **extra: str) -> dict[str, str]:
        return process_env(
            PAMTALK_ENV="test",
            PAMTALK_DATABASE_URL=self.database.url,
            PAMTALK_MLFLOW_TRACKING_URI=self.registry_uri,
            PAMTALK_MODEL_WATCH_INTERVAL="0",
            PAMTALK_CELERY_BROKER_URL=self.broker.url,
            PAMTALK_CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
            PAMTALK_BATCH_CHUNK_RETRIES="1",
            PAMTALK_BATCH_DEMAND_CHUNK="32",
            **extra,
        )

    def running(self) -> Worker:
        """The worker, started (two processes) if none is alive."""
        if self.started and self.started[-1].process.poll() is None:
            return self.started[-1]
        worker = Worker(self.env(), self.folder, f"worker{len(self.started)}", concurrency=2)
        self.started.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log.name}\n{w.output()[-3000:]}" for w in self.started)

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@pytest.fixture(scope="module")
def workers(
    database: Database,
    registry_uri: str,
    broker: Broker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    folder = tmp_path_factory.mktemp(f"workers-{broker.name}")
    started = Workers(database, registry_uri, broker, folder)
    yield started
    started.kill_all()
    broker.purge()


async def plan_nightly(
    database: Database, registry_uri: str, run_date: date, demand_chunk: int
) -> tuple[int, list[tuple[int, str]]]:
    """Plan a nightly job here (champions pinned now); returns its id and its chunks."""
    ctx = BatchContext(batch_settings(database, registry_uri, batch_demand_chunk=demand_chunk))
    try:
        job = await ctx.plan_nightly(run_date)
        return job.id, await ctx.chunks(job.id)
    finally:
        await ctx.close()


def dispatch(broker: Broker, job_id: int, chunks: list[tuple[int, str]]) -> None:
    with broker.celery() as celery:
        celery_app.dispatch(celery, job_id, chunks)


async def wait_for_job(
    database: Database, job_id: int, workers: Workers, within: float = 60
) -> BatchJob:
    """Poll the job until it has ended and none of its chunks is still to run."""
    deadline = time.monotonic() + within
    while True:
        job = await database.job(job_id)
        if job.status in (JobStatus.completed, JobStatus.failed):
            chunks = await database.chunks(job_id)
            if all(c.status in (JobStatus.completed, JobStatus.failed) for c in chunks):
                return job
        if time.monotonic() > deadline:
            open_chunks = [
                (c.index, c.kind, c.status, c.attempts)
                for c in await database.chunks(job_id)
                if c.status not in (JobStatus.completed, JobStatus.failed)
            ]
            pytest.fail(
                f"job {job_id} still {job.status} after {within}s: "
                f"{job.chunks_done}/{job.chunks_total}, open chunks {open_chunks[:10]}"
                f"\n{workers.logs()}"
            )
        await asyncio.sleep(0.2)
