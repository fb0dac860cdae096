"""What the benchmark scripts (and the tests' server fixtures) share: scratch services, the
lifecycle of a server process group, readiness waits, a CPU meter and the machine's
description. Imported as ``bench.harness``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from redis import asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent  # pamtalk, mlflow, uvicorn of this environment
TOKEN_VARIABLE = "PAMTALK_BENCH_TOKEN"
PACKAGES = ("pamtalk", "fastapi", "uvicorn", "onnxruntime", "ray", "mlflow", "locust")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- scratch services ---------------------------------------------------------------------


async def recreate_database(pg_url: str, name: str, *, create: bool = True) -> None:
    conn = await asyncpg.connect(f"{pg_url}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def flush_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def random_key(length: int = 40) -> str:
    """An API key for the servers' admin (PAMTALK_ADMIN_API_KEY)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_step(what: str, command: list[str], env: Mapping[str, str]) -> None:
    """Runs a setup command to completion; its output is shown only if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    say(f"{what}: {time.perf_counter() - started:.1f} s")


@contextlib.contextmanager
def process_group(
    command: list[str], env: Mapping[str, str], log: Path, *, grace: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group, output to ``log``. On exit the group is stopped
    and, if ``env`` carries a TOKEN_VARIABLE, so is any process carrying the same token (one
    that left the group, such as a Ray daemon)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop_process_group(proc, grace)
        if token := env.get(TOKEN_VARIABLE):
            kill_tagged(token)


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the leader, which shuts down what it started (uvicorn's workers, Ray);
    after ``grace`` s, or once it is gone, SIGKILL to whatever of its group is left."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def pamtalk_serve(
    env: Mapping[str, str], log: Path, *, workers: int = 1, timeout: float = 90.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``pamtalk serve`` on a free port in its own process group: (base URL, process), once
    ``/readyz`` answers 200; the group stops on exit."""
    port = free_port()
    command = [str(BIN / "pamtalk"), "serve", "--workers", str(workers), "--port", str(port)]
    with process_group(command, env, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/readyz", proc, log, timeout)
        yield url, proc


def tagged_pids(token: str) -> list[int]:
    """Processes whose environment holds ``TOKEN_VARIABLE=token``: a run's servers and all
    they started."""
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def kill_tagged(token: str, grace: float = 5.0) -> None:
    deadline = time.monotonic() + grace
    while (pids := tagged_pids(token)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
    for pid in tagged_pids(token):
        say(f"killing leftover process {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def log_tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


# --- readiness ----------------------------------------------------------------------------


class NotReady(RuntimeError):
    """A server exited or did not get ready in time; the message ends with its log's tail."""


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Calls ``ready`` until it returns True (an HTTP transport error counts as not yet);
    raises ``NotReady`` if the process exits first or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"exited with {proc.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if ready():
                return
        time.sleep(interval)
    raise NotReady(f"not ready after {timeout:.0f} s:\n{log_tail(log)}")


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Waits until ``url`` answers 200 (``NotReady`` otherwise)."""
    wait_until(lambda: httpx.get(url, timeout=2.0).status_code == 200, proc, log, timeout)


# --- closed-loop load ---------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One measured point: ``concurrency`` closed-loop workers, ``warmup`` s unmeasured, then
    ``duration`` s measured."""

    concurrency: int
    warmup: float
    duration: float

    def window(self) -> tuple[float, float]:
        """The measured window (``time.perf_counter``): after the warm-up from now."""
        start = time.perf_counter() + self.warmup
        return start, start + self.duration


@dataclass
class Samples:
    """What the workers of one point observed; only the window's requests are kept."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ok_total: int = 0  # successes including warm-up and stragglers, for sanity checks

    def record(
        self, began: float, ended: float, window: tuple[float, float], error: str | None
    ) -> None:
        """A request that ended inside the window counts: its latency, or its error."""
        self.ok_total += error is None
        if window[0] <= ended <= window[1]:
            if error is None:
                self.latencies.append(ended - began)
            else:
                self.errors[error] += 1


# --- CPU ----------------------------------------------------------------------------------


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds so far of each live process of ``pids``."""
    found = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            found[pid] = times.user + times.system
    return found


def process_tree(pid: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    return []


def named_processes(name: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def box_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far, all cores (Linux: guest time is already
    counted in user time)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


class CpuMeter:
    """Cores used over a window (CPU seconds / wall seconds): by each named group of
    processes, by this process (``self``) and by the whole machine (``box``).

    A group is re-listed at both ends: a process that started in between counts whole, one
    that ended in between is lost (PostgreSQL keeps its pooled backends)."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]] | None = None) -> None:
        self.groups = dict(groups or {})
        self.cores: dict[str, float] = {}

    def _snapshot(self) -> tuple[float, float, float, dict[str, dict[int, float]]]:
        by_group = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        return time.perf_counter(), time.process_time(), box_busy_seconds(), by_group

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self) -> dict[str, float]:
        (wall0, self0, box0, groups0), (wall1, self1, box1, groups1) = self.before, self._snapshot()
        wall = wall1 - wall0
        self.cores = {
            name: sum(cpu - groups0[name].get(pid, 0.0) for pid, cpu in after.items()) / wall
            for name, after in groups1.items()
        } | {"self": (self1 - self0) / wall, "box": (box1 - box0) / wall}
        return self.cores

    async def over(self, window: tuple[float, float]) -> dict[str, float]:
        """Meters the window (``time.perf_counter`` start and end) from inside an event loop."""
        await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
        self.start()
        await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
        return self.stop()

    def __enter__(self) -> CpuMeter:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- the machine and the report -----------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on, for its report; call it at the start of the run."""
    return {
        "cpus": os.cpu_count(),
        "processor": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "packages": {name: package_version(name) for name in PACKAGES},
    }


def machine_line(host: Mapping[str, Any]) -> str:
    """``machine()`` in words, for the docs."""
    return (
        f"{host['cpus']} cores (`{host['processor']}`), {host['platform']}, Python {host['python']}"
    )


def command_line(script: str) -> str:
    """How this run was started, as the docs show it."""
    return " ".join([".venv/bin/python", f"bench/{Path(script).name}", *sys.argv[1:]])


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
