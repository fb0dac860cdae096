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
      HTTP proxy, ``POST /`` with ``{"practices": [...], "mask": [...]}``; written below;
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
    --write also updates the section of docs/benchmarks.md. Takes about
    servers x (startup + concurrencies x (warmup + duration)): ~5 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import secrets
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import onnxruntime as ort
import orjson
from common import free_port
from ray import serve
from starlette.requests import Request

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
MODEL = "pamtalk-esg"
FEATURES = 34
SERVERS = ("ours-local", "ours-ray", "ray-serve", "mlflow")
ROWS = 256  # distinct request bodies, cycled
REQUEST_TIMEOUT_S = 30.0
CHECK_ATOL = 1e-3  # scores are 0-100; every server runs the same fp32 graph
BIN = Path(sys.executable).parent

Encode = Callable[[np.ndarray, np.ndarray], bytes]
Decode = Callable[[bytes], np.ndarray]


# --- the plain Ray Serve peer -------------------------------------------------------------


@serve.deployment(max_ongoing_requests=128)  # Ray's default (5) would cap a batch at 5
class EsgOnnx:
    """The ESG ONNX graph in one ONNX Runtime session; single-row JSON requests are batched
    by ``@serve.batch`` into one session call."""

    def __init__(self, onnx_path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as ours (PAMTALK_SERVING_THREADS=1)
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def predict(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        practices = np.stack([p for p, _ in rows])  # [B, 34]
        mask = np.stack([m for _, m in rows])  # [B, 34]
        (scores,) = self.session.run(None, {"practices": practices, "mask": mask})  # [B, 4, 3]
        return list(scores)

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        row = (
            np.asarray(body["practices"], dtype=np.float32),
            np.asarray(body["mask"], dtype=np.float32),
        )
        scores: np.ndarray = await self.predict(row)
        return {"scores": scores.tolist()}


def run_ray_peer(onnx_path: Path, port: int) -> None:
    """Serves ``EsgOnnx`` on ``port`` until SIGTERM (a fresh local Ray cluster)."""
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(EsgOnnx.bind(str(onnx_path)), name="esg", route_prefix="/")  # type: ignore[attr-defined]
    print("ray-serve peer ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    practices: np.ndarray  # [ROWS, 34] float64 with 3 decimals (short JSON), 0 where not reported
    mask: np.ndarray  # [ROWS, 34] float64, 1 = reported


def random_rows(seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    mask = (rng.random((ROWS, FEATURES)) < 0.85).astype(np.float64)
    practices = np.round(rng.random((ROWS, FEATURES)), 3) * mask
    return Rows(practices, mask)


def reference_scores(onnx_path: Path, rows: Rows) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {
        name: a[:1].astype(np.float32)
        for name, a in (("practices", rows.practices), ("mask", rows.mask))
    }
    (scores,) = session.run(None, feeds)
    return np.asarray(scores)  # [1, 4, 3]


# --- request bodies and answers, per protocol ---------------------------------------------


def encode_oip(practices: np.ndarray, mask: np.ndarray) -> bytes:
    def tensor(name: str, values: np.ndarray) -> dict[str, Any]:
        return {"name": name, "shape": [1, FEATURES], "datatype": "FP32", "data": values.tolist()}

    return orjson.dumps({"inputs": [tensor("practices", practices), tensor("mask", mask)]})


def decode_oip(body: bytes) -> np.ndarray:
    (output,) = orjson.loads(body)["outputs"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def encode_ray(practices: np.ndarray, mask: np.ndarray) -> bytes:
    return orjson.dumps({"practices": practices.tolist(), "mask": mask.tolist()})


def decode_ray(body: bytes) -> np.ndarray:
    return np.asarray(orjson.loads(body)["scores"], dtype=np.float32)[None]


def encode_mlflow(practices: np.ndarray, mask: np.ndarray) -> bytes:
    return orjson.dumps({"inputs": {"practices": [practices.tolist()], "mask": [mask.tolist()]}})


def decode_mlflow(body: bytes) -> np.ndarray:
    predictions = orjson.loads(body)["predictions"]
    if isinstance(predictions, dict):  # one entry per output tensor
        predictions = predictions["scores"]
    return np.asarray(predictions, dtype=np.float32)


# --- servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """How to start one server and talk to it."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    infer_path: str
    encode: Encode
    decode: Decode
    headers: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Setup:
    """What every server is pointed at."""

    store_uri: str  # sqlite:///.../mlflow.db
    database_url: str
    admin_key: str
    onnx_path: Path
    version: str
    token: str  # in every server's environment: finds what they leave behind
    ray_tmp: Path


def base_env(setup: Setup) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMTALK_", "RAY_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # mlflow execs `uvicorn`
        "PAMTALK_BENCH_TOKEN": setup.token,
        "RAY_TMPDIR": str(setup.ray_tmp),
    }


def ours_env(setup: Setup, backend: str) -> dict[str, str]:
    return {
        **base_env(setup),
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": setup.database_url,
        "PAMTALK_MLFLOW_TRACKING_URI": setup.store_uri,
        "PAMTALK_ADMIN_API_KEY": setup.admin_key,
        "PAMTALK_SERVING_BACKEND": backend,
        "PAMTALK_SERVING_PRECISION": "fp32",
        "PAMTALK_DEVICE": "cpu",
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        "PAMTALK_LOG_LEVEL": "WARNING",
    }


def ours(setup: Setup, backend: str) -> Target:
    port = free_port()
    return Target(
        name=f"ours-{backend}",
        command=[str(BIN / "pamtalk"), "serve", "--port", str(port)],
        env=ours_env(setup, backend),
        port=port,
        ready_path="/v2/health/ready",
        infer_path=f"/v2/models/{MODEL}/infer",
        encode=encode_oip,
        decode=decode_oip,
        headers={"X-API-Key": setup.admin_key},
        ready_timeout_s=300.0 if backend == "ray" else 120.0,
    )


def ray_peer(setup: Setup) -> Target:
    port = free_port()
    script = [sys.executable, str(Path(__file__).resolve())]
    return Target(
        name="ray-serve",
        command=[*script, "--ray-peer", str(setup.onnx_path), "--port", str(port)],
        env=base_env(setup),
        port=port,
        ready_path="/-/healthz",
        infer_path="/",
        encode=encode_ray,
        decode=decode_ray,
        ready_timeout_s=300.0,
    )


def mlflow_server(setup: Setup) -> Target:
    port = free_port()
    model_uri = f"models:/{MODEL}/{setup.version}"
    return Target(
        name="mlflow",
        command=[
            *(str(BIN / "mlflow"), "models", "serve", "-m", model_uri),
            *("--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(port)),
        ],
        env={**base_env(setup), "MLFLOW_TRACKING_URI": setup.store_uri},
        port=port,
        ready_path="/ping",
        infer_path="/invocations",
        encode=encode_mlflow,
        decode=decode_mlflow,
    )


def target(name: str, setup: Setup) -> Target:
    if name.startswith("ours-"):
        return ours(setup, name.removeprefix("ours-"))
    return ray_peer(setup) if name == "ray-serve" else mlflow_server(setup)


@contextlib.contextmanager
def running(server: Target, log: Path, token: str) -> Iterator[subprocess.Popen[bytes]]:
    """The server in its own process group; on exit the group is stopped and any process
    still carrying ``token`` (one that left the group, such as a Ray daemon) is killed."""
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            server.command,
            env=server.env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_group(proc)
            kill_leftovers(token)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the leader, which shuts down what it started (uvicorn's lifespan, Ray);
    then SIGKILL to whatever of its group is left."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tagged_pids(token: str) -> list[int]:
    """Processes whose environment holds ``PAMTALK_BENCH_TOKEN=token``: the servers of this
    run and everything they started."""
    needle = f"PAMTALK_BENCH_TOKEN={token}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def kill_leftovers(token: str, grace: float = 5.0) -> None:
    deadline = time.monotonic() + grace
    while (pids := tagged_pids(token)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
    for pid in tagged_pids(token):
        print(f"killing leftover process {pid}", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the live processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    pass


def log_tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


async def wait_ready(
    server: Target, proc: subprocess.Popen[bytes], body: bytes, log: Path
) -> np.ndarray:
    """Polls the ready path, then a prediction, until both answer 200; returns the scores."""
    deadline = time.monotonic() + server.ready_timeout_s
    headers = {"Content-Type": "application/json", **server.headers}
    async with aiohttp.ClientSession(
        base_url=server.base_url, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(f"exited with {proc.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(server.ready_path) as ready:
                    if ready.status == 200:
                        async with session.post(
                            server.infer_path, data=body, headers=headers
                        ) as answer:
                            if answer.status == 200:
                                return server.decode(await answer.read())
            await asyncio.sleep(0.5)
    raise ServerFailed(f"not ready after {server.ready_timeout_s:.0f} s:\n{log_tail(log)}")


# --- load generator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    concurrency: int
    warmup: float
    duration: float


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Point:
    server: str
    concurrency: int
    predictions: int
    errors: int
    per_s: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # cores the load generator used over the window
    server_cpu: float  # cores the server's processes used over the window
    other_cpu: float  # cores anything else on the machine used over the window
    error_kinds: dict[str, int]


async def worker(
    session: aiohttp.ClientSession,
    server: Target,
    bodies: Iterator[bytes],
    window: tuple[float, float],
    samples: Samples,
) -> None:
    """Sends requests back to back until the window closes; records those ending inside it."""
    start_at, end_at = window
    headers = {"Content-Type": "application/json", **server.headers}
    while time.perf_counter() < end_at:
        began = time.perf_counter()
        error: str | None = None
        try:
            async with session.post(server.infer_path, data=next(bodies), headers=headers) as r:
                await r.read()
                if r.status != 200:
                    error = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        ended = time.perf_counter()
        if start_at <= ended <= end_at:
            if error is None:
                samples.latencies.append(ended - began)
            else:
                samples.errors[error] += 1


@dataclass(frozen=True)
class Cpu:
    """Cores used over a window: by this process, by the server's, by everything else."""

    client: float
    server: float
    other: float


async def cpu_in_window(window: tuple[float, float], pids: list[int]) -> Cpu:
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    before = time.process_time(), cpu_seconds(pids), machine_cpu_seconds()
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    after = time.process_time(), cpu_seconds(pids), machine_cpu_seconds()
    span = window[1] - window[0]
    client, server, total = ((b - a) / span for a, b in zip(before, after, strict=True))
    return Cpu(client, server, max(0.0, total - client - server))


async def run_point(server: Target, bodies: list[bytes], load: Load, token: str) -> Point:
    samples = Samples()
    connector = aiohttp.TCPConnector(limit=load.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        base_url=server.base_url, connector=connector, timeout=timeout
    ) as session:
        start_at = time.perf_counter() + load.warmup
        window = (start_at, start_at + load.duration)
        cpu = asyncio.create_task(cpu_in_window(window, tagged_pids(token)))
        streams = [
            itertools.islice(itertools.cycle(bodies), i, None) for i in range(load.concurrency)
        ]
        await asyncio.gather(*(worker(session, server, s, window, samples) for s in streams))
    return summarize(server.name, load, samples, await cpu)


async def wait_quiet(pids: list[int], cores: float, patience: float) -> float:
    """Waits until the rest of the machine (not this process, not ``pids``) has used fewer
    than ``cores`` over a second, or ``patience`` s have passed; returns its last use."""

    def others() -> float:
        return machine_cpu_seconds() - cpu_seconds(pids) - time.process_time()

    deadline = time.monotonic() + patience
    while True:
        before = others()
        await asyncio.sleep(1.0)
        used = others() - before
        if used < cores or time.monotonic() >= deadline:
            return used


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summarize(name: str, load: Load, samples: Samples, cpu: Cpu) -> Point:
    ordered = sorted(samples.latencies)
    return Point(
        server=name,
        concurrency=load.concurrency,
        predictions=len(ordered),
        errors=sum(samples.errors.values()),
        per_s=round(len(ordered) / load.duration, 1),
        p50_ms=round(percentile(ordered, 50) * 1000, 2),
        p99_ms=round(percentile(ordered, 99) * 1000, 2),
        client_cpu=round(cpu.client, 2),
        server_cpu=round(cpu.server, 2),
        other_cpu=round(cpu.other, 2),
        error_kinds=dict(samples.errors),
    )


# --- one server, start to stop --------------------------------------------------------------


@dataclass
class ServerRun:
    server: str
    status: str = "ok"  # or "not run"
    reason: str = ""
    startup_s: float = 0.0
    check_max_abs_diff: float | None = None
    points: list[Point] = field(default_factory=list)


async def sweep(server: Target, proc: subprocess.Popen[bytes], ctx: Context) -> ServerRun:
    run = ServerRun(server.name)
    started = time.perf_counter()
    bodies = [server.encode(p, m) for p, m in zip(ctx.rows.practices, ctx.rows.mask, strict=True)]
    scores = await wait_ready(server, proc, bodies[0], ctx.log(server.name))
    run.startup_s = round(time.perf_counter() - started, 1)
    run.check_max_abs_diff = float(np.max(np.abs(scores - ctx.expected)))
    if not run.check_max_abs_diff <= CHECK_ATOL:
        raise ServerFailed(f"answers differ from ONNX Runtime by {run.check_max_abs_diff:.3g}")
    say(
        f"{server.name}: ready in {run.startup_s} s; |answer - ONNX Runtime| <= "
        f"{run.check_max_abs_diff:.2g}"
    )
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
    pids, cores = tagged_pids(ctx.setup.token), ctx.args.quiet_cores
    busy = await wait_quiet(pids, cores, 0.0)
    if busy >= cores:
        say(f"  other work uses {busy:.2f} cores: waiting up to {ctx.args.quiet_wait:g} s")
        busy = await wait_quiet(pids, cores, ctx.args.quiet_wait)
        if busy >= cores:
            say(f"  still {busy:.2f} cores of other work: measuring anyway")


def measure_server(name: str, ctx: Context) -> ServerRun:
    server = target(name, ctx.setup)
    say(f"{name}: starting {' '.join(server.command[:3])} ... on port {server.port}")
    log = ctx.log(name)
    try:
        with running(server, log, ctx.setup.token) as proc:
            return asyncio.run(sweep(server, proc, ctx))
    except ServerFailed as exc:
        say(f"{name}: NOT RUN: {exc}")
        return ServerRun(name, status="not run", reason=str(exc).splitlines()[0])


# --- setup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    setup: Setup
    rows: Rows
    expected: np.ndarray

    def log(self, server: str) -> Path:
        return RESULTS / f"serving-{server}.log"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def random_key(length: int = 40) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def ensure_store(store: Path, tiny: bool) -> tuple[str, str, Path]:
    """The store's URI and the ESG champion's version and fp32 ONNX file; trains and promotes
    the default models first if the store has no champions (output to a log)."""
    import mlflow

    from pamtalk.registry import defaults, promote
    from pamtalk.registry import store as registry
    from pamtalk.settings import Settings

    store = store.resolve()
    uri = f"sqlite:///{store}/mlflow.db"
    settings = Settings(mlflow_tracking_uri=uri)
    client = registry.connect(settings)
    if promote.by_alias(client, MODEL, promote.CHAMPION) is None:
        log = RESULTS / "serving-train.log"
        say(f"training the default models into {store} (tiny={tiny}); log: {log}")
        started = time.perf_counter()
        with log.open("w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            defaults.ensure_champions(client, settings, store / "train", tiny=tiny)
        say(f"trained in {time.perf_counter() - started:.0f} s")
    champion = promote.by_alias(client, MODEL, promote.CHAMPION)
    assert champion is not None
    folder = store / "esg-onnx" / str(champion.version)
    if not (folder / "model.onnx").exists():
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}/{champion.version}", dst_path=str(folder)
        )
    return uri, str(champion.version), folder / "model.onnx"


def prepare_database(url: str, admin_key: str) -> None:
    """``pamtalk db upgrade`` on a fresh SQLite file, then the admin API key (what ``pamtalk
    init`` does with PAMTALK_ADMIN_API_KEY, without the demo data)."""
    from pamtalk.db import manage
    from pamtalk.settings import Settings

    env = {**os.environ, "PAMTALK_DATABASE_URL": url}
    done = subprocess.run(
        [str(BIN / "pamtalk"), "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"pamtalk db upgrade failed:\n{done.stdout}\n{done.stderr}")
    asyncio.run(manage.register_admin_key(Settings(database_url=url, admin_api_key=admin_key)))


def make_setup(args: argparse.Namespace, tmp: Path) -> Setup:
    store_uri, version, onnx_path = ensure_store(args.store, args.tiny)
    database_url = f"sqlite+aiosqlite:///{tmp}/b.db"
    admin_key = random_key()
    if any(name.startswith("ours-") for name in args.only):
        prepare_database(database_url, admin_key)
    (tmp / "r").mkdir()
    return Setup(
        store_uri=store_uri,
        database_url=database_url,
        admin_key=admin_key,
        onnx_path=onnx_path,
        version=version,
        token=secrets.token_hex(8),
        ray_tmp=tmp / "r",  # short: Ray's socket paths must fit in 107 bytes
    )


# --- report ---------------------------------------------------------------------------------


def best_within_slo(run: ServerRun, slo_ms: float) -> Point | None:
    fine = [p for p in run.points if p.errors == 0 and p.p99_ms <= slo_ms]
    return max(fine, key=lambda p: p.per_s, default=None)


def points_table(runs: list[ServerRun]) -> str:
    lines = [
        "| server | concurrency | predictions/s | p50 ms | p99 ms | errors "
        "| CPU client | CPU server | CPU other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if run.status != "ok":
            lines.append(f"| {run.server} | not run: {run.reason} | | | | | | | |")
        lines += [
            f"| {p.server} | {p.concurrency} | {p.per_s:.1f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
            f"| {p.errors} | {p.client_cpu:.2f} | {p.server_cpu:.2f} | {p.other_cpu:.2f} |"
            for p in run.points
        ]
    return "\n".join(lines)


def ratio(ours: Point | None, peer: Point | None) -> str:
    if ours is None or peer is None or peer.per_s == 0:
        return "-"
    return f"{ours.per_s / peer.per_s:.2f}x"


def summary_table(runs: list[ServerRun], slo_ms: float) -> str:
    best = {run.server: best_within_slo(run, slo_ms) for run in runs}
    mine = [name for name in ("ours-local", "ours-ray") if name in best]
    lines = [
        f"| server | best predictions/s at p99 <= {slo_ms:g} ms | concurrency | p50 ms | p99 ms "
        + "".join(f"| {name} / this " for name in mine)
        + "|",
        "|---|---:|---:|---:|---:" + "|---:" * len(mine) + "|",
    ]
    for run in runs:
        point = best[run.server]
        cells = (
            f"{point.per_s:.1f} | {point.concurrency} | {point.p50_ms:.2f} | {point.p99_ms:.2f}"
            if point is not None
            else ("not run | | |" if run.status != "ok" else "none within the SLO | | |")
        )
        ratios = "".join(f"| {ratio(best[name], point)} " for name in mine)
        lines.append(f"| {run.server} | {cells} {ratios}|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": cpu_model(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def command_line() -> str:
    return " ".join([".venv/bin/python", "bench/serving.py", *sys.argv[1:]])


def build_report(
    args: argparse.Namespace,
    setup: Setup,
    host: dict[str, Any],
    runs: list[ServerRun],
    took: tuple[float, float],  # (setup, whole run) in seconds
) -> dict[str, Any]:
    return {
        "benchmark": "serving",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": host,
        "setup_s": round(took[0]),
        "took_s": round(took[1]),
        "config": {
            "model": f"{MODEL} v{setup.version} (fp32 ONNX, {'tiny' if args.tiny else 'default'})",
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "slo_p99_ms": args.slo_ms,
            "client": "aiohttp, one session, a pool of N connections, closed loop",
        },
        "runs": [asdict(run) for run in runs],
        "summary_markdown": summary_table(runs, args.slo_ms),
        "points_markdown": points_table(runs),
    }


# --- docs/benchmarks.md ---------------------------------------------------------------------

SECTION = "Serving: ours vs Ray Serve vs mlflow models serve"
ANCHOR = "serving-ours-vs-ray-serve-vs-mlflow-models-serve"
BEGIN = "<!-- bench/serving.py --write: generated from here -->"
END = "<!-- bench/serving.py --write: generated up to here -->"

INTRO = f"""\
The same registered model served four ways, measured with the same load generator in one run
([`bench/serving.py`](../bench/serving.py); its docstring is the runbook): the ESG champion
(`{MODEL}`, one fp32 ONNX file; ours is pinned to fp32 with `PAMTALK_SERVING_PRECISION=fp32`)
answering single-row requests (34 practice floats + 34 mask floats).

- **ours-local**: `pamtalk serve` (uvicorn, 1 worker), `PAMTALK_SERVING_BACKEND=local`, the
  Open Inference Protocol `POST /v2/models/{MODEL}/infer` with an `X-API-Key` (API-key auth,
  request middleware and metrics included); in-process dynamic batcher (64 rows, 2 ms).
- **ours-ray**: the same front with `PAMTALK_SERVING_BACKEND=ray`: micro-batches go through a
  Ray Serve DeploymentHandle to ONNX Runtime replicas (the default 1-2 autoscaled replicas).
- **ray-serve**: a plain Ray Serve app written in the script: one replica, ONNX Runtime with
  1 intra-op thread, `@serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)`,
  `max_ongoing_requests=128`, JSON `{{"practices", "mask"}}` through Ray's HTTP proxy.
- **mlflow**: `mlflow models serve -m models:/{MODEL}/<champion> --env-manager local
  --workers 1` (the default worker count), `POST /invocations` with
  `{{"inputs": {{"practices": [[...]], "mask": [[...]]}}}}`; no batching; ONNX Runtime with
  its default threads.

Before a server is measured its answer to a fixed row must match ONNX Runtime run in the
benchmark process. Load: one asyncio client (aiohttp, one session with a pool of N keep-alive
connections) in the benchmark process, apart from the servers; closed loop with N workers,
bodies pre-encoded from 256 random rows; per point an unmeasured warm-up, then a measured
window; a request counts if it ends inside the window. One server runs at a time; before each
point the script waits (up to 30 s) for other work on the machine to drop under 0.5 cores, and
the `CPU other` column says how much it used during the window anyway."""


def generated_block(report: dict[str, Any]) -> str:
    host, cfg = report["machine"], report["config"]
    return f"""{BEGIN}

### Command

```sh
{report["command"]}
```

### Machine

{host["cpus"]} cores (`{host["processor"]}`), {host["platform"]}, Python {host["python"]}.
**Shared:** the load generator runs on the same {host["cpus"]} cores as the server under test
(the CPU columns give the cores each used in the window), so every figure is a lower bound of
what the server does alone, and the client's share grows with the request rate. 1-minute load
average at start: {host["load_average_1m_at_start"]}.

### Date

{report["date"]}; model {cfg["model"]}; {cfg["duration_s"]:g} s measured after
{cfg["warmup_s"]:g} s warm-up per point; the whole run took {report["took_s"]} s, of which
{report["setup_s"]} s setting up (training the models when the store is new).

### Results

Best throughput with p99 <= {cfg["slo_p99_ms"]:g} ms and no errors, and how ours compares:

{report["summary_markdown"]}

Every point:

{report["points_markdown"]}

{END}"""


PLACEHOLDER_READING = """### What it shows

(Write the reading of the numbers here; `--write` only replaces the generated part above.)"""


def write_docs(report: dict[str, Any], path: Path = DOCS) -> None:
    text = path.read_text()
    block = generated_block(report)
    if f"## {SECTION}" in text and BEGIN in text and END in text:
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = add_index_entry(text)
        section = f"## {SECTION}\n\n{INTRO}\n\n{block}\n\n{PLACEHOLDER_READING}\n"
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def add_index_entry(text: str) -> str:
    """Adds the section to the list under "Sections:" (after its last entry)."""
    entry = f"- [{SECTION}](#{ANCHOR})"
    if entry in text:
        return text
    lines = text.splitlines()
    if "Sections:" not in lines:
        return text
    start = last = lines.index("Sections:")
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("- ")):
        if lines[end].startswith("- "):
            last = end
        end += 1
    lines.insert(last + 1, entry)
    return "\n".join(lines) + "\n"


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


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ray_peer is not None:
        run_ray_peer(args.ray_peer, args.port)
        return 0
    started, host = time.perf_counter(), machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="psb-") as tmp:
        setup = make_setup(args, Path(tmp))
        setup_s = time.perf_counter() - started
        rows = random_rows(args.seed)
        ctx = Context(args, setup, rows, reference_scores(setup.onnx_path, rows))
        runs = [measure_server(name, ctx) for name in SERVERS if name in args.only]
    took = (setup_s, time.perf_counter() - started)
    report = build_report(args, setup, host, runs, took)
    write_json(args.output, report)
    print(report["summary_markdown"], "", report["points_markdown"], sep="\n")
    print(f"\nwritten: {args.output}")
    if args.write:
        write_docs(report)
        print(f"updated: {DOCS.relative_to(ROOT)}")
    bad = [r for r in runs if r.status != "ok" or any(p.errors for p in r.points)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
