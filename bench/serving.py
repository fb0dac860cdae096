"""Serving benchmark: ours (local and Ray backends) against plain Ray Serve and
``mlflow models serve``, the same registered model under the same load, in one run.

What it measures
    Four servers of the ESG champion (``pamtalk-esg``, the same fp32 ONNX file), each asked
    for single-row predictions (34 practice floats + 34 mask floats):

    * ``ours-local``: ``pamtalk serve`` (uvicorn, 1 worker), PAMTALK_SERVING_BACKEND=local,
      Open Inference Protocol ``POST /v2/models/pamtalk-esg/infer`` with an ``X-API-Key``;
    * ``ours-ray``: the same with PAMTALK_SERVING_BACKEND=ray (a local Ray cluster);
    * ``ray-serve``: a plain Ray Serve app (one replica, ``@serve.batch(max_batch_size=64,
      batch_wait_timeout_s=0.002)``, ONNX Runtime, 1 intra-op thread like ours) behind Ray's
      HTTP proxy, ``POST /`` with ``{"practices": [...], "mask": [...]}``
      (``serving_ray_peer.py``);
    * ``mlflow``: ``mlflow models serve -m models:/pamtalk-esg/<champion> --env-manager local
      --workers 1`` (its default), ``POST /invocations`` with ``{"inputs": {...}}``.

    Ours is forced to the fp32 file (PAMTALK_SERVING_PRECISION=fp32; ``auto`` would pick the
    int8 one on a CPU) so that all four run the same graph; every server's answer to a fixed
    row is checked against ONNX Runtime in this process before it is measured.

    For each server and each client concurrency: completed predictions/s, latency p50/p99,
    errors (any status but 200, or a transport error), and the CPU the client and the server
    used in the window. The summary is each server's best throughput at p99 <= --slo-ms.

How the load is generated
    One asyncio client in this process (aiohttp, which Ray Serve and MLflow already need:
    cheaper per request than httpx), separate from the server processes. Closed loop: N
    workers on one session with a pool of N keep-alive connections, each sending its next
    request when the previous one is answered, bodies pre-encoded and cycled from 256 random
    rows. Per point: --warmup s unmeasured, then --duration s measured; a request counts if
    it ends inside the window. Servers run one at a time; this machine's cores are shared by
    the client and the server (the JSON records both CPU figures).

How to run
    From the repository root::

        .venv/bin/python bench/serving.py [--duration 8] [--warmup 2]
            [--concurrency 1 8 32 64 128] [--only ours-local ray-serve ...] [--write]

    The first run trains and registers the default models into --store (default
    ``bench/results/serving-store``, reused afterwards; about 3 minutes, --tiny: seconds).
    Each run makes a temporary SQLite database (``pamtalk db upgrade`` + the admin key),
    starts each server in its own process group on a free port, waits until it answers a
    prediction, sweeps the concurrencies, then stops the group and kills any process it left
    (found by a per-run token in the environment). Results go to
    ``bench/results/serving.json``, server logs to ``bench/results/serving-<server>.log``;
    --write also replaces the generated part of the serving section of docs/benchmarks.md
    (between ``<!-- BEGIN bench/serving.py -->`` and its END line). Takes about
    servers x (startup + concurrencies x (warmup + duration)): ~5 minutes with the defaults.

Where the code is
    This script (arguments, one server start to stop, main); ``serving_setup.py`` (model,
    database, request rows), ``serving_servers.py`` (the four servers and their protocols),
    ``serving_ray_peer.py`` (the plain Ray Serve app), ``serving_load.py`` (the load client),
    ``serving_report.py`` (tables, JSON, docs); ``harness.py`` and ``docs.py`` are shared.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness
from bench.serving_load import Load, ServerRun, run_point, wait_quiet
from bench.serving_report import build_report, docs_section
from bench.serving_servers import SERVERS, Target, first_answer, target
from bench.serving_setup import Rows, Setup, make_setup, random_rows, reference_scores

RESULTS = harness.RESULTS
SECTION = docs.section_name(__file__)
CHECK_ATOL = 1e-3  # scores are 0-100; every server runs the same fp32 graph
say = harness.say


class ServerFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    setup: Setup
    rows: Rows
    expected: np.ndarray

    def log(self, server: str) -> Path:
        return RESULTS / f"serving-{server}.log"


# --- one server, start to stop --------------------------------------------------------------


def check(server: Target, proc: subprocess.Popen[bytes], body: bytes, ctx: Context) -> ServerRun:
    """Waits for the server's first answer and compares it with ONNX Runtime's."""
    run = ServerRun(server.name)
    started = time.perf_counter()
    scores = first_answer(server, proc, body, ctx.log(server.name))
    run.startup_s = round(time.perf_counter() - started, 1)
    run.check_max_abs_diff = float(np.max(np.abs(scores - ctx.expected)))
    if not run.check_max_abs_diff <= CHECK_ATOL:
        raise ServerFailed(f"answers differ from ONNX Runtime by {run.check_max_abs_diff:.3g}")
    say(
        f"{server.name}: ready in {run.startup_s} s; |answer - ONNX Runtime| <= "
        f"{run.check_max_abs_diff:.2g}"
    )
    return run


async def sweep(server: Target, bodies: list[bytes], run: ServerRun, ctx: Context) -> ServerRun:
    for concurrency in ctx.args.concurrency:
        await settle(ctx)
        load = Load(concurrency, ctx.args.warmup, ctx.args.duration)
        point = await run_point(server, bodies, load, ctx.setup.token)
        say(
            f"  c={concurrency:<4} {point.per_s:>8.1f}/s  p50 {point.p50_ms:7.2f} ms  "
            f"p99 {point.p99_ms:7.2f} ms  errors {point.errors}  "
            f"cpu client {point.client_cpu:.2f} server {point.server_cpu:.2f} "
            f"other {point.other_cpu:.2f}"
        )
        run.points.append(point)
    return run


async def settle(ctx: Context) -> None:
    """Before a point: waits (up to --quiet-wait s) for other work on the machine to stop."""
    token, cores = ctx.setup.token, ctx.args.quiet_cores
    busy = await wait_quiet(token, cores, 0.0)
    if busy >= cores:
        say(f"  other work uses {busy:.2f} cores: waiting up to {ctx.args.quiet_wait:g} s")
        busy = await wait_quiet(token, cores, ctx.args.quiet_wait)
        if busy >= cores:
            say(f"  still {busy:.2f} cores of other work: measuring anyway")


def measure_server(name: str, ctx: Context) -> ServerRun:
    server = target(name, ctx.setup)
    say(f"{name}: starting {' '.join(server.command[:3])} ... on port {server.port}")
    bodies = [server.encode(p, m) for p, m in zip(ctx.rows.practices, ctx.rows.mask, strict=True)]
    try:
        with harness.process_group(server.command, server.env, ctx.log(name)) as proc:
            run = check(server, proc, bodies[0], ctx)
            return asyncio.run(sweep(server, bodies, run, ctx))
    except (harness.NotReady, ServerFailed) as exc:
        say(f"{name}: NOT RUN: {exc}")
        return ServerRun(name, status="not run", reason=str(exc).splitlines()[0])


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured s per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s per point")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32, 64, 128], help="client workers"
    )
    parser.add_argument("--only", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--slo-ms", type=float, default=50.0, help="p99 bound of the summary")
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.5,
        help="before each point, wait while other work on the machine uses this many cores",
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="... for at most this s")
    parser.add_argument("--store", type=Path, default=RESULTS / "serving-store")
    parser.add_argument("--tiny", action="store_true", help="train tiny models into a new store")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request rows")
    parser.add_argument("--output", type=Path, default=RESULTS / "serving.json")
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    parser.add_argument("--ray-peer", type=Path, help=argparse.SUPPRESS)  # internal: the peer
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ray_peer is not None:
        from bench.serving_ray_peer import run_ray_peer  # imports Ray Serve

        run_ray_peer(args.ray_peer, args.port)
        return 0
    if args.write:
        docs.check_section(SECTION)
    started, host = time.perf_counter(), harness.machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="psb-") as tmp:
        setup = make_setup(args, Path(tmp))
        setup_s = time.perf_counter() - started
        rows = random_rows(args.seed)
        ctx = Context(args, setup, rows, reference_scores(setup.onnx_path, rows))
        runs = [measure_server(name, ctx) for name in SERVERS if name in args.only]
    took = (setup_s, time.perf_counter() - started)
    report = build_report(args, setup, host, runs, took, harness.command_line(__file__))
    harness.write_json(args.output, report)
    print(report["summary_markdown"], "", report["points_markdown"], sep="\n")
    print(f"\nwritten: {args.output}")
    if args.write:
        docs.write_section(SECTION, docs_section(report))
        print(f"updated: {docs.DOCS.relative_to(harness.ROOT)}")
    bad = [r for r in runs if r.status != "ok" or any(p.errors for p in r.points)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
