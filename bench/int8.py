"""Static int8 against fp32: raw ONNX Runtime rows/s at batch 1, 64 and 1024, and the batch
job end to end with each precision.

What it measures
    On PostgreSQL with seeded data, per model:

    * raw: ONNX Runtime alone (``pamtalk.gpu.session.open_session`` on the CPU with the
      serving thread count, as serving opens it) on ready-made inputs of the batch size,
      the fp32 and the int8 file of the same version taking turns: model rows (a demand
      series, a farm) per second;
    * end to end: a job of that model's chunks run by ``BatchContext.run_inline`` (the chunk
      code a Celery worker runs), once by a context serving fp32 and once by one serving
      int8, taking turns: rows written per second of wall time.

    The table gives medians of ``--repeat`` runs and the ratio int8 / fp32.

The models
    Full-size architectures trained for one epoch (speed depends on the architecture, not on
    how well it is trained), quantized as ``pamtalk train`` does (static, calibrated on the
    training inputs), registered and promoted in a temporary MLflow store. A model whose int8
    file fails its gate has no int8 to serve; the script says so and measures the file
    anyway for the raw figures.

How to run
    Needs PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth). From the repo root::

        .venv/bin/python bench/int8.py [--repeat 3] [--demand-chunk 256] [--esg-chunk 512]
                                       [--farms 2000] [--write]

    It recreates the database ``pamtalk_bench_int8``, seeds it, trains the models, measures,
    prints Markdown tables, and with ``--write`` puts them in docs/benchmarks.md (between
    ``<!-- BEGIN bench/int8.py -->`` and its END line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness
from bench.batch import end_to_end, raw_rows_per_second
from pamtalk.batching import jobs
from pamtalk.batching.context import BatchContext
from pamtalk.db.manage import seed_database, upgrade_database
from pamtalk.db.seed import SeedSize
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.registry import promote, publish, store
from pamtalk.registry.digests import INT8_ARTIFACT
from pamtalk.settings import Settings

SECTION = docs.section_name(__file__)
PG_URL = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "pamtalk_bench_int8"
RAW_BATCHES = (1, 64, 1024)
PRECISIONS = ("fp32", "int8")


class ServedLines(logging.Handler):
    """The predictor service's "NAME vN: serving PRECISION (why)" lines while watched."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    @contextlib.contextmanager
    def watch(self) -> Iterator[list[str]]:
        logger = logging.getLogger("pamtalk.serving.service")
        self.lines, level = [], logger.level
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        try:
            yield self.lines
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        if ": serving " in (message := record.getMessage()):
            self.lines.append(message)


SERVED = ServedLines()


def train_models(settings: Settings, work: Path) -> dict[str, dict[str, Path]]:
    """Each model's fp32 and int8 files, from a registered and promoted version."""
    client = store.connect(settings)
    files = {}
    for kind, contract in (("demand", DEMAND), ("esg", ESG)):
        print(f"training {contract.registered_name} (full size, one epoch) ...", flush=True)
        candidate, version = publish.train_and_register(
            client, settings, kind, out_dir=work / kind, epochs=1
        )
        print(candidate.report, flush=True)
        promote.promote(client, contract.registered_name, version)
        files[contract.registered_name] = {
            "fp32": candidate.fp32,
            "int8": int8_file(client, contract.registered_name, version),
        }
    return files


def int8_file(client: MlflowClient, name: str, version: str) -> Path:
    """The version's int8 file as stored (promote.download returns it only where it passed
    its gate; the raw figures are measured either way)."""
    resolved = promote.download(client, promote.version_of(client, name, version))
    if resolved.int8 is not None:
        return resolved.int8
    print(f"{name} v{version}: int8 failed its gate; batch jobs will serve fp32", flush=True)
    run_id = promote.version_of(client, name, version).run_id
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=INT8_ARTIFACT))


async def main(args: argparse.Namespace) -> str:
    await harness.recreate_database(PG_URL, DATABASE)
    url = f"postgresql+asyncpg://{PG_URL.removeprefix('postgresql://')}/{DATABASE}"
    work = Path(tempfile.mkdtemp(prefix="pamtalk-bench-int8-"))
    settings = Settings(
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{work}/mlflow.db",
        batch_demand_chunk=args.demand_chunk,
        batch_esg_chunk=args.esg_chunk,
        device="cpu",
    )
    await upgrade_database(settings)
    print(await seed_database(settings, SeedSize(farms=args.farms, transactions=args.transactions)))
    files = await asyncio.to_thread(train_models, settings, work)
    contexts = {
        precision: BatchContext(settings.model_copy(update={"serving_precision": precision}))
        for precision in PRECISIONS
    }
    async with contexts["fp32"].sessions.read() as session:
        farms = await jobs.active_farm_ids(session)
    raw: dict[tuple[str, int, str], list[float]] = {}
    e2e: dict[tuple[str, str], list[float]] = {}
    served: dict[tuple[str, str], str] = {}
    try:
        for _ in range(args.repeat):
            for kind, contract, items, size in (
                ("demand", DEMAND, jobs.every_series(), args.demand_chunk),
                ("esg", ESG, farms, args.esg_chunk),
            ):
                name = contract.registered_name
                for batch in RAW_BATCHES:
                    for precision in PRECISIONS:
                        rate = await asyncio.to_thread(
                            raw_rows_per_second, files[name][precision], batch, 1, 2.0
                        )
                        raw.setdefault((name, batch, precision), []).append(rate)
                for precision, ctx in contexts.items():
                    with SERVED.watch() as lines:
                        rate, _ = await end_to_end(ctx, kind, items, size)  # type: ignore[arg-type]
                    e2e.setdefault((name, precision), []).append(rate)
                    # What the job's service loaded, from its own log line (fetch's).
                    (line,) = [m for m in lines if m.startswith(f"{name} v")]
                    served[(name, precision)] = line.split(": serving ")[1].split()[0]
                print(
                    f"{name}: end to end "
                    + ", ".join(f"{p} {e2e[(name, p)][-1]:,.0f} rows/s" for p in PRECISIONS),
                    flush=True,
                )
    finally:
        for ctx in contexts.values():
            await ctx.close()
    return tables(args, raw, e2e, served)


def tables(
    args: argparse.Namespace,
    raw: dict[tuple[str, int, str], list[float]],
    e2e: dict[tuple[str, str], list[float]],
    served: dict[tuple[str, str], str],
) -> str:
    lines = [
        "Raw ONNX Runtime, model rows/s (a demand series, a farm), one intra-op thread:",
        "",
        "| model | batch | fp32 rows/s | int8 rows/s | int8 / fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in (DEMAND.registered_name, ESG.registered_name):
        for batch in RAW_BATCHES:
            fp32, int8 = (statistics.median(raw[(name, batch, p)]) for p in PRECISIONS)
            lines.append(f"| {name} | {batch} | {fp32:,.0f} | {int8:,.0f} | {int8 / fp32:.2f} |")
    lines += [
        "",
        "Batch job end to end (`BatchContext.run_inline`), rows written/s; the precision each "
        "context actually served in brackets:",
        "",
        "| model | chunk | fp32 rows/s | int8 rows/s | int8 / fp32 | fp32 range | int8 range |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, chunk in (
        (DEMAND.registered_name, args.demand_chunk),
        (ESG.registered_name, args.esg_chunk),
    ):
        fp32, int8 = (statistics.median(e2e[(name, p)]) for p in PRECISIONS)
        lines.append(
            f"| {name} | {chunk} | {fp32:,.0f} ({served[(name, 'fp32')]}) | "
            f"{int8:,.0f} ({served[(name, 'int8')]}) | {int8 / fp32:.2f} | "
            + " | ".join(spread(e2e[(name, p)]) for p in PRECISIONS)
            + " |"
        )
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f} - {max(values):,.0f}"


def docs_section(text: str, args: argparse.Namespace, host: dict[str, object]) -> str:
    """The generated part of this benchmark's section of docs/benchmarks.md."""
    command = (
        f".venv/bin/python bench/int8.py --repeat {args.repeat} --demand-chunk "
        f"{args.demand_chunk} --esg-chunk {args.esg_chunk} --farms {args.farms} --write"
    )
    return (
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {harness.machine_line(host)} "
        f"(shared with other work), PostgreSQL on the same box, medians of {args.repeat} runs, "
        f"fp32 and int8 taking turns in one process.\n\n```\n{command}\n```\n\n{text}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
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
