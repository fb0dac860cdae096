"""A Ray Serve replica SIGKILLed under inference load (issue 12).

The scenario starts its own Ray head (``ray start --head --block`` on free ports, in a short
private temp folder, every process tagged so that all are found and stopped afterwards) and a
real ``pamtalk serve`` with PAMTALK_SERVING_BACKEND=ray on it (RAY_ADDRESS: that head only,
never a cluster of someone else's). The ESG model's Serve application is pinned to two
replicas; under Open Inference Protocol load one replica's worker process, found through Ray's
state API, gets SIGKILL. Verdict: every answer a 200 or a retriable 429/503 with Retry-After,
and the Serve controller back at two RUNNING replicas (a new one) within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import harness
from pamtalk.registry import defaults, store
from pamtalk.settings import Settings
from tests.chaos import load, stack
from tests.chaos.load import Record
from tests.chaos.scenarios import Verdict, _esg_rows, _log_lines, _sleep_until, non_retriable

# Ray is imported only when this scenario runs (the module is imported by every chaos run).
MODEL = "pamtalk-esg"
APP = f"{MODEL}-v1"  # ray_backend.app_name: the champion, the store's first version
DEPLOYMENT = "OnnxReplica"  # ray_backend.REPLICA
ACTOR_CLASS = f"ServeReplica:{APP}:{DEPLOYMENT}"  # the class name Ray's state API lists
REPLICAS = 2
# Serve's controller health-checks each replica every 10 s (DEFAULT_HEALTH_CHECK_PERIOD_S):
# it notices the dead one within that (measured 2.7-7.1 s), then starts a new one (measured
# 1.5-2.1 s on the loaded 2-core box; 10 s allowed).
RECOVERY_BOUND_S = 20.0
# The fault under test is a replica dying with calls in flight. With 2-row requests the
# front's batcher merged them into about one call at a time, and three kills caught none.
# So each replica holds a call up to HOLD_MS for company (serve.batch), and each request is
# ROWS rows, so that two never fit one 64-row batch: every request is its own call, and
# with 8 clients both replicas hold some at any moment.
HOLD_MS = 200
ROWS = 40
# Still, the calls are short on a replica (the next one flushes a batch it does not fit):
# a kill caught some in four runs of five. One that caught none is followed, once the
# replica is replaced, by another, up to MAX_KILLS.
MAX_KILLS = 3


@dataclass(frozen=True)
class RayHead:
    address: str  # the GCS address, host:port
    token: str  # harness.TOKEN_VARIABLE of every process of this cluster
    auth: dict[str, str]  # what a client of this cluster needs in its environment


def _ray_auth() -> dict[str, str]:
    """Token authentication with a token of this cluster's own. Left unset, Ray turns token
    auth on whenever ~/.ray/auth_token exists (any local ``ray.init()`` writes one), and then
    only clients that read that same shared file get in. A client process must have these in
    its environment before it imports Ray: Ray reads its auth mode once, at import."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _ray_env(token: str, auth: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # no RAY_ADDRESS
    return env | auth | {harness.TOKEN_VARIABLE: token, "RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment meanwhile (Ray's client reads them there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def ray_head(log: Path, auth: dict[str, str], cpus: int = 2) -> Iterator[RayHead]:
    """A Ray head of this scenario's own: every port chosen free (the machine may run other
    clusters on Ray's default ports), its temp folder short (Ray's unix sockets live under
    it, and their paths may not exceed 107 bytes). Stopped on exit: SIGTERM to ``ray start
    --block``, which stops its daemons, then any tagged process left."""
    token = harness.random_key()
    temp = tempfile.mkdtemp(prefix="rayk-", dir="/tmp")
    port = harness.free_port()
    ports = {
        flag: harness.free_port()
        for flag in (
            "ray-client-server-port", "dashboard-port", "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
            "node-manager-port", "object-manager-port",
        )
    }  # fmt: skip
    command = [
        str(harness.BIN / "ray"), "start", "--head", "--block", f"--port={port}",
        "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", f"--num-cpus={cpus}",
        # The dashboard's HTTP server carries the state API (list_actors); without it, no.
        "--include-dashboard=true", "--disable-usage-stats",
        f"--object-store-memory={256 * 1024**2}",
        *(f"--{flag}={value}" for flag, value in ports.items()),
    ]  # fmt: skip
    try:
        with harness.process_group(command, _ray_env(token, auth), log, grace=30) as proc:
            harness.wait_until(
                lambda: "Ray runtime started" in log.read_text(errors="replace"), proc, log, 90
            )
            yield RayHead(f"127.0.0.1:{port}", token, auth)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _train(folder: Path) -> None:
    """Tiny champions of both models in the store the stack serves from."""
    settings = Settings(mlflow_tracking_uri=f"sqlite:///{folder}/mlflow.db")
    client = store.connect(settings)
    defaults.ensure_champions(client, settings, folder / "train", say=lambda _: None, tiny=True)


def _replicas() -> list[dict[str, Any]]:
    """The Serve controller's view of the ESG replicas: replica_id, actor_id, pid, state."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None
    app = client.get_serve_details().get("applications", {}).get(APP)
    if app is None:
        return []
    replicas: list[dict[str, Any]] = app["deployments"][DEPLOYMENT]["replicas"]
    return replicas


def _running(replicas: list[dict[str, Any]]) -> set[str]:
    return {r["actor_id"] for r in replicas if r["state"] == "RUNNING"}


def _tagged(pid: int, token: str) -> bool:
    needle = f"{harness.TOKEN_VARIABLE}={token}".encode()
    with contextlib.suppress(OSError):
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return False


def _kill_one(head: RayHead) -> dict[str, Any]:
    """SIGKILL to one live ESG replica's worker process, found through Ray's state API."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=head.address,
        filters=[("class_name", "=", ACTOR_CLASS), ("state", "=", "ALIVE")],
        raise_on_missing_output=False,
    )
    if len(actors) != REPLICAS:
        raise RuntimeError(f"{len(actors)} live {ACTOR_CLASS} actors, not {REPLICAS}")
    victim = min(actors, key=lambda a: a.actor_id)
    pid = victim.pid or 0  # 0: not placed yet
    if not _tagged(pid, head.token):  # only a process this scenario's Ray started
        raise RuntimeError(f"pid {pid} of {victim.actor_id} is not this scenario's")
    os.kill(pid, signal.SIGKILL)
    return {"actor_id": victim.actor_id, "pid": pid, "at": time.monotonic()}


@dataclass
class Kill:
    actor_id: str
    pid: int
    at: float  # time.monotonic() of the SIGKILL
    caught: int = 0  # calls in flight on it, each retried (the backend logs each)
    noticed: float | None = None  # the controller no longer lists it RUNNING
    recovered: float | None = None  # REPLICAS RUNNING again, without it
    replaced: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, Any]:
        def since(moment: float | None) -> float | None:
            return None if moment is None else round(moment - self.at, 2)

        return {
            "pid": self.pid,
            "calls_caught": self.caught,
            "controller_noticed_s": since(self.noticed),
            "recovery_s": since(self.recovered),
        }


def _retried(log: Path) -> int:
    """pamtalk.serving.ray_backend's line for each call caught on a dead replica."""
    return len(_log_lines(log, "lost a replica mid-call"))


async def _replica_kill(
    service: stack.Stack, head: RayHead, before_s: float, after_s: float, clients: int
) -> Verdict:
    verdict = Verdict("ray_replica_kill", recovery_bound_s=RECOVERY_BOUND_S)
    record = Record()
    kills: list[Kill] = []
    state: dict[str, Any] = {}  # "done": no more kills; "failed": the exception that stopped it
    start = time.monotonic()

    def deadline() -> float:
        if "failed" in state:
            return start
        if "done" in state and kills and kills[-1].recovered is not None:
            return kills[-1].recovered + after_s
        return start + before_s + MAX_KILLS * (RECOVERY_BOUND_S + 5) + 30  # past every bound

    async def watch() -> None:
        while time.monotonic() < deadline():
            running = _running(await asyncio.to_thread(_replicas))
            now = time.monotonic()
            for kill in kills:
                if kill.noticed is None and kill.actor_id not in running:
                    kill.noticed = now
                if kill.recovered is None and kill.noticed is not None and len(running) >= REPLICAS:
                    kill.recovered = now
                    kill.replaced.set()
            await asyncio.sleep(0.2)

    async def kill_until_caught() -> None:
        """One replica killed; if that caught no call in flight (the fault under test), once
        it is replaced another, up to MAX_KILLS."""
        await _sleep_until(start + before_s)
        try:
            while True:
                before = _retried(service.log)
                killed = await asyncio.to_thread(_kill_one, head)
                kills.append(Kill(**killed))
                await asyncio.sleep(1.0)  # a caught call fails within milliseconds
                kills[-1].caught = _retried(service.log) - before
                if kills[-1].caught or len(kills) == MAX_KILLS:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kills[-1].replaced.wait(), RECOVERY_BOUND_S + 5)
                if kills[-1].recovered is None:
                    break
                await asyncio.sleep(1.0)
        except Exception as exc:  # the load stops; the scenario fails with this
            state["failed"] = exc
        state["done"] = True

    async def score(_: int) -> None:
        while time.monotonic() < deadline():
            await record.send(
                http, "infer", "POST", f"/v2/models/{MODEL}/infer",
                json=_esg_rows(ROWS), headers=service.admin,
            )  # fmt: skip
            await asyncio.sleep(0.02)

    async with load.client(service.url, clients) as http:
        await asyncio.gather(watch(), kill_until_caught(), load.workers(clients, score))
    if "failed" in state:
        raise state["failed"]

    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(non_retriable(o) for o in record.outcomes)
    recoveries = [k.recovered - k.at for k in kills if k.recovered is not None]
    if len(recoveries) == len(kills):
        verdict.recovery_s = round(max(recoveries), 2)  # the slowest replacement
    last = kills[-1]
    during = record.between(last.at, last.recovered or deadline())
    verdict.measured = {
        "kills": [k.summary() for k in kills],
        "statuses": record.statuses(),
        "during_recovery": Record(during).statuses(),  # of the last kill
        "infer_p99_ms": load.p99_ms([o for o in record.outcomes if o.status == 200]),
        "during_recovery_p99_ms": load.p99_ms([o for o in during if o.status == 200]),
        "calls_retried": _retried(service.log),
    }
    if not any(k.caught for k in kills):
        verdict.problems.append(f"{len(kills)} kills caught no call in flight: not the fault")
    if not any(o.status == 200 for o in during):
        verdict.problems.append("nothing was answered while the replica was down")
    if any(400 <= o.status < 500 and o.status != 429 for o in record.outcomes):
        verdict.problems.append("4xx answers to valid requests")
    return verdict.judge()


def ray_replica_kill(
    folder: Path, before_s: float = 3.0, after_s: float = 3.0, clients: int = 8
) -> Verdict:
    """One of two Ray Serve replicas of the ESG model SIGKILLed under inference load."""
    with _environment(auth := _ray_auth()):
        return _with_ray(folder / "ray_replica_kill", auth, before_s, after_s, clients)


def _with_ray(
    root: Path, auth: dict[str, str], before_s: float, after_s: float, clients: int
) -> Verdict:
    if "ray" in sys.modules:
        raise RuntimeError("Ray was imported before the scenario set its cluster's auth token")
    import ray

    from pamtalk.serving.ray_backend import REPLICA, app_name, scale

    assert (app_name(MODEL, "1"), REPLICA) == (APP, DEPLOYMENT)
    root.mkdir(parents=True, exist_ok=True)
    _train(root)
    tokens: list[str] = []
    try:
        with ray_head(root / "ray.log", auth) as head:
            tokens.append(head.token)
            env = {
                "PAMTALK_SERVING_BACKEND": "ray",
                "RAY_ADDRESS": head.address,
                **head.auth,
                "PAMTALK_RAY_MIN_REPLICAS": "1",
                "PAMTALK_RAY_MAX_REPLICAS": str(REPLICAS),
                "PAMTALK_RAY_NUM_CPUS": "0.25",  # 2 CPUs: both models' replicas and more
                "PAMTALK_SERVING_WARMUP_BATCHES": "[1]",
                "PAMTALK_SERVING_MAX_WAIT_MS": str(HOLD_MS),
                "PAMTALK_SERVING_MAX_BATCH_SIZE": "64",
            }
            with stack.running(root, env=env) as service:
                tokens.append(service.admin_key)
                ray.init(address=head.address, log_to_driver=False)
                try:
                    scale(MODEL, REPLICAS)  # pinned: Serve keeps two up, whatever the load
                    _wait_for(lambda: len(_running(_replicas())) == REPLICAS, 90)
                    verdict = asyncio.run(_replica_kill(service, head, before_s, after_s, clients))
                finally:
                    ray.shutdown()
    finally:
        left = [pid for token in tokens for pid in harness.tagged_pids(token)]
    verdict.measured["processes_left"] = left
    if left:
        verdict.problems.append(f"processes left running: {left}")
        verdict.passed = False
    return verdict


def _wait_for(ready: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout} s")
        time.sleep(0.2)
