"""Batch scoring throughput: end-to-end rows/s against the model's raw ONNX Runtime speed.

What it measures
    On PostgreSQL with seeded data, per model, at the same batch size:

    * raw: ONNX Runtime alone (``pamtalk.gpu.session.open_session``, the session serving
      uses) scoring ready-made inputs of one chunk's size, over and over: output rows per
      second (a demand series gives 28 forecast rows, a farm one assessment);
    * end to end: a job of that model's chunks run by ``BatchContext.run_inline``
      (the code a Celery worker runs for each chunk): read the chunk's inputs, build
      features, infer through the predictor service at the pinned version, upsert the rows
      and the chunk's completion in one transaction; rows written per second of wall time.

    Both run in this one process, one after the other, repeated ``--repeat`` times; the
    table gives medians and the ratio end-to-end / raw (goal: at least 0.5).

The models
    Full-size architectures trained for one epoch on the generator (speed depends on the
    architecture, not on how well it is trained), registered and promoted in a temporary
    MLflow store.

How to run
    Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth). From the repo root::

        .venv/bin/python bench/batch.py [--repeat 5] [--demand-chunk 256] [--esg-chunk 512]
                                        [--farms 2000] [--write]

    It recreates the database ``pamtalk_bench_batch``, seeds it, trains the models (about a
    minute), measures, prints a Markdown table, and with ``--write`` puts it in
    docs/benchmarks.md (between ``<!-- BEGIN bench/batch.py -->`` and its END line).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness
from pamtalk.batching import jobs
from pamtalk.batching.context import BatchContext, champions
from pamtalk.db.manage import seed_database, upgrade_database
from pamtalk.db.seed import SeedSize
from pamtalk.gpu import session as ort_session
from pamtalk.models.contract import DEMAND, DEMAND_HORIZON, ESG
from pamtalk.registry import promote, publish, store
from pamtalk.settings import Settings

SECTION = docs.section_name(__file__)
RUN_DATE = dt.date(2026, 11, 26)
PG_URL = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "pamtalk_bench_batch"


def train_models(settings: Settings, work: Path) -> dict[str, Path]:
    client = store.connect(settings)
    paths = {}
    for kind, contract in (("demand", DEMAND), ("esg", ESG)):
        print(f"training {contract.registered_name} (full size, one epoch) ...", flush=True)
        _, version = publish.train_and_register(
            client,
            settings,
            kind,
            out_dir=work / kind,
            epochs=1,
        )
        promote.promote(client, contract.registered_name, version)
        resolved = promote.resolve(client, contract.registered_name)
        assert resolved is not None
        paths[contract.registered_name] = resolved.fp32
    return paths


def raw_rows_per_second(path: Path, batch: int, rows_per_item: int, seconds: float) -> float:
    session = ort_session.open_session(path, device="cpu", threads=Settings().serving_threads)
    rng = np.random.default_rng(0)
    feeds = {
        value.name: rng.random(example.shape, dtype=np.float32) * 100
        for value, example in zip(
            session.get_inputs(), ort_session.example_inputs(session, batch), strict=True
        )
    }
    session.run(None, feeds)  # the first run of a shape allocates memory
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        session.run(None, feeds)
        calls += 1
    return calls * batch * rows_per_item / elapsed


async def end_to_end(
    ctx: BatchContext, kind: jobs.ChunkKind, items: list[object], size: int
) -> tuple[float, int]:
    versions = await asyncio.to_thread(champions, ctx.settings)
    async with ctx.sessions.write() as session:
        job = await jobs.create(
            session, f"bench-{kind}", RUN_DATE, versions, jobs.split(kind, items, size)
        )
    start = time.perf_counter()
    job = await ctx.run_inline(job.id)
    elapsed = time.perf_counter() - start
    assert job.status == "completed", job.error
    return job.rows_written / elapsed, job.rows_written


async def main(args: argparse.Namespace) -> str:
    await harness.recreate_database(PG_URL, DATABASE)
    url = f"postgresql+asyncpg://{PG_URL.removeprefix('postgresql://')}/{DATABASE}"
    work = Path(tempfile.mkdtemp(prefix="pamtalk-bench-batch-"))
    settings = Settings(
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{work}/mlflow.db",
        batch_demand_chunk=args.demand_chunk,
        batch_esg_chunk=args.esg_chunk,
    )
    await upgrade_database(settings)
    print(await seed_database(settings, SeedSize(farms=args.farms, transactions=args.transactions)))
    models = await asyncio.to_thread(train_models, settings, work)
    ctx = BatchContext(settings)
    async with ctx.sessions.write() as session:
        farms = await jobs.active_farm_ids(session)
    rows: dict[str, dict[str, list[float]]] = {"demand": {}, "esg": {}}
    try:
        for _ in range(args.repeat):
            for kind, contract, items, size, per_item in (
                ("demand", DEMAND, jobs.every_series(), args.demand_chunk, DEMAND_HORIZON),
                ("esg", ESG, farms, args.esg_chunk, 1),
            ):
                raw = await asyncio.to_thread(
                    raw_rows_per_second, models[contract.registered_name], size, per_item, 3.0
                )
                e2e, written = await end_to_end(ctx, kind, items, size)  # type: ignore[arg-type]
                for name, value in (("raw", raw), ("e2e", e2e), ("rows", written)):
                    rows[kind].setdefault(name, []).append(value)
                print(f"{kind}: raw {raw:,.0f} rows/s, end to end {e2e:,.0f} rows/s", flush=True)
    finally:
        await ctx.close()
    return table(args, rows)


def table(args: argparse.Namespace, rows: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| model | batch (chunk) | rows per job | raw ORT rows/s | end-to-end rows/s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, size in (("demand", args.demand_chunk), ("esg", args.esg_chunk)):
        raw = statistics.median(rows[kind]["raw"])
        e2e = statistics.median(rows[kind]["e2e"])
        lines.append(
            f"| pamtalk-{kind} | {size} | {int(rows[kind]['rows'][0]):,} | {raw:,.0f} | "
            f"{e2e:,.0f} | {e2e / raw:.2f} |"
        )
    return "\n".join(lines)


def docs_section(text: str, args: argparse.Namespace, host: dict[str, object]) -> str:
    """The generated part of this benchmark's section of docs/benchmarks.md."""
    command = (
        f".venv/bin/python bench/batch.py --repeat {args.repeat} --demand-chunk "
        f"{args.demand_chunk} --esg-chunk {args.esg_chunk} --farms {args.farms} --write"
    )
    return (
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {harness.machine_line(host)} "
        f"(shared with other work), PostgreSQL on the same box, medians of {args.repeat} runs, "
        f"raw and end to end alternating in one process.\n\n```\n{command}\n```\n\n{text}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--demand-chunk", type=int, default=256)
    parser.add_argument("--esg-chunk", type=int, default=512)
    parser.add_argument("--farms", type=int, default=2000)
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args()
    if arguments.write:
        docs.check_section(SECTION)
    machine = harness.machine()
    result = asyncio.run(main(arguments))
    print(result)
    if arguments.write:
        docs.write_section(SECTION, docs_section(result, arguments, machine))
