"""The fault-injection scenarios: each starts its own stack (tests/chaos/stack.py), puts load on
it from a bounded client, injects one real fault on a real process and returns a ``Verdict``.

``errors_5xx`` counts the answers a client may not retry: every 5xx except a 503 that carries
Retry-After (a 503 without it counts too), and every request that got no HTTP answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
from mlflow import MlflowClient

from bench import harness
from pamtalk.domain import KST
from pamtalk.models.contract import ESG_FEATURES
from pamtalk.registry import defaults, publish, store
from pamtalk.settings import Settings
from tests.chaos import load, stack
from tests.chaos.load import Outcome, Record
from tests.services import MlflowServer, RedisProcess

RECOVERY_BOUND_S = 5.0


@dataclass(frozen=True)
class Outage:
    """The shape of a fault: ``clients`` concurrent clients, the fault after ``before_s``,
    the component back ``outage_s`` later, then ``after_s`` more of load."""

    clients: int = 4
    before_s: float = 2.0
    outage_s: float = 3.0
    after_s: float = 4.0

    @property
    def total_s(self) -> float:
        return self.before_s + self.outage_s + self.after_s

    async def inject(
        self, start: float, stop: Callable[[], None], restart: Callable[[], None]
    ) -> dict[str, float]:
        """Stops the component ``before_s`` after ``start`` and restarts it ``outage_s``
        later: the moments it was stopped, found down and back (time.monotonic)."""
        await _sleep_until(start + self.before_s)
        timeline = {"stopped": time.monotonic()}
        await asyncio.to_thread(stop)
        timeline["down"] = time.monotonic()
        await _sleep_until(timeline["stopped"] + self.outage_s)
        await asyncio.to_thread(restart)
        timeline["back"] = time.monotonic()
        return timeline


@dataclass
class Verdict:
    scenario: str
    passed: bool = False
    requests: int = 0
    errors_5xx: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None
    measured: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # wrong answers, data, or no recovery
    slow: list[str] = field(default_factory=list)  # a timing bound missed
    recovery_bound_s: float = RECOVERY_BOUND_S

    def judge(self) -> Verdict:
        if self.errors_5xx:
            self.problems.append(f"{self.errors_5xx} non-retriable 5xx or unanswered requests")
        if self.lost or self.duplicated:
            self.problems.append(f"{self.lost} lost, {self.duplicated} duplicated")
        if self.recovery_s is None:
            self.problems.append("did not recover")
        elif self.recovery_s > self.recovery_bound_s:
            self.slow.append(f"recovery {self.recovery_s} s (bound {self.recovery_bound_s} s)")
        self.passed = not self.problems and not self.slow
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def non_retriable(outcome: Outcome) -> bool:
    if outcome.status == 0:
        return True
    return outcome.status >= 500 and not (outcome.status == 503 and outcome.retry_after)


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _poll_ready(url: str, until: Callable[[], bool]) -> list[tuple[float, int]]:
    seen: list[tuple[float, int]] = []
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        while not until():
            try:
                status = (await http.get("/readyz")).status_code
            except httpx.TransportError:
                status = 0
            seen.append((time.monotonic(), status))
            await asyncio.sleep(0.1)
    return seen


# --- 1. PostgreSQL restarted during transaction writes -----------------------------------


async def _sellers(dsn: str) -> tuple[list[int], list[tuple[int, list[str]]]]:
    conn = await asyncpg.connect(dsn)
    try:
        buyers = [r["id"] for r in await conn.fetch("SELECT id FROM users WHERE role = 'buyer'")]
        farms = await conn.fetch(
            "SELECT f.id, array_agg(c.crop ORDER BY c.crop) AS crops FROM farms f "
            "JOIN farm_crops c ON c.farm_id = f.id WHERE f.status = 'active' GROUP BY f.id"
        )
    finally:
        await conn.close()
    return buyers[:8], [(r["id"], list(r["crops"])) for r in farms]


async def _ledger_check(dsn: str, keys: list[str]) -> tuple[int, int, list[str]]:
    """(lost, duplicated, aggregate mismatches) over the transactions of ``keys``."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM transactions "
            "WHERE idempotency_key = ANY($1::text[]) GROUP BY idempotency_key",
            keys,
        )
        written = await conn.fetch(
            "SELECT crop, region, created_at, quantity_g, total_krw FROM transactions "
            "WHERE status = 'completed'"
        )
        daily = await conn.fetch(
            "SELECT crop, region, day, quantity_g, value_krw, transactions FROM demand_daily"
        )
    finally:
        await conn.close()
    counts = {r["idempotency_key"]: r["n"] for r in rows}
    lost = sum(1 for key in keys if key not in counts)
    duplicated = sum(n - 1 for n in counts.values())
    summed: dict[tuple[str, str, Any], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in written:
        created = r["created_at"]
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        cell = summed[(r["crop"], r["region"], created.astimezone(KST).date())]
        cell[0] += r["quantity_g"]
        cell[1] += r["total_krw"]
        cell[2] += 1
    aggregate = {
        (r["crop"], r["region"], r["day"]): [r["quantity_g"], r["value_krw"], r["transactions"]]
        for r in daily
        if r["transactions"]
    }
    mismatches = [
        f"{cell}: transactions {summed.get(cell)} vs demand_daily {aggregate.get(cell)}"
        for cell in sorted(set(summed) | set(aggregate), key=str)
        if summed.get(cell) != aggregate.get(cell)
    ]
    return lost, duplicated, mismatches


async def _database_restart(service: stack.Stack, outage: Outage) -> Verdict:
    verdict = Verdict("database_restart")
    buyers, farms = await _sellers(service.postgres.dsn)
    record = Record()
    keys: list[str] = []
    confirmed: dict[str, int] = {}
    start = time.monotonic()
    stop_issuing = start + outage.total_s

    async def write(number: int) -> None:
        n = 0
        while time.monotonic() < stop_issuing:
            n += 1
            farm_id, crops = farms[(number * 7 + n) % len(farms)]
            body = {
                "farm_id": farm_id,
                "crop": crops[n % len(crops)],
                "quantity_kg": 1 + (n % 9) * 0.5,
                "unit_price_krw": 1000 + 10 * n,
                "buyer_id": buyers[number % len(buyers)],
            }
            key = uuid.uuid4().hex
            keys.append(key)
            headers = {**service.admin, "Idempotency-Key": key}
            for _ in range(400):  # the same key until the write is confirmed
                outcome, response = await record.send(
                    http, "write", "POST", "/v1/transactions", json=body, headers=headers
                )
                if outcome.status == 201 and response is not None:
                    confirmed[key] = response.json()["id"]
                    break
                if outcome.status and outcome.status < 500:
                    break  # a 4xx: the request itself was wrong; reported below
                await asyncio.sleep(0.1)

    done = False
    async with load.client(service.url, outage.clients) as http:
        ready_task = asyncio.create_task(_poll_ready(service.url, lambda: done))
        _, timeline = await asyncio.gather(
            load.workers(outage.clients, write),
            outage.inject(start, service.postgres.stop, service.postgres.start),
        )
        done = True
        ready = await ready_task

    back = timeline["back"]
    first_write = min((o.ended for o in record.outcomes if o.status == 201 and o.began >= back),
                      default=None)  # fmt: skip
    first_ready = min((t for t, status in ready if t >= back and status == 200), default=None)
    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(non_retriable(o) for o in record.outcomes)
    if first_write is not None and first_ready is not None:
        verdict.recovery_s = round(max(first_write, first_ready) - back, 2)
    lost, duplicated, mismatches = await _ledger_check(service.postgres.dsn, keys)
    verdict.lost = lost + sum(1 for key in keys if key not in confirmed)
    verdict.duplicated = duplicated
    during = record.between(timeline["stopped"], back)
    verdict.measured = {
        "transactions": len(keys),
        "confirmed": len(confirmed),
        "statuses": record.statuses(),
        "during_outage": Record(during).statuses(),
        "outage_s": round(back - timeline["stopped"], 2),
        "write_recovery_s": None if first_write is None else round(first_write - back, 2),
        "readyz_recovery_s": None if first_ready is None else round(first_ready - back, 2),
        "readyz_503_during_outage": any(s != 200 for t, s in ready if timeline["down"] <= t < back),
        "p99_ms": load.p99_ms([o for o in record.outcomes if o.status == 201]),
    }
    if mismatches:
        verdict.problems.append(f"demand_daily differs from the transactions: {mismatches[:3]}")
    if not verdict.measured["readyz_503_during_outage"]:
        verdict.problems.append("/readyz did not report the database down")
    if not during:
        verdict.problems.append("no request was made during the outage")
    if any(400 <= o.status < 500 for o in record.outcomes):
        verdict.problems.append("4xx answers to valid writes")
    return verdict.judge()


def database_restart(folder: Path, outage: Outage = Outage(after_s=3.0)) -> Verdict:
    """PostgreSQL stopped (``pg_ctl stop -m fast``) and started again under idempotent writes."""
    with stack.running(folder / "database_restart") as service:
        return asyncio.run(_database_restart(service, outage))


# --- 2. Redis killed and restarted under load ---------------------------------------------


async def _redis_loss(service: stack.Stack, redis: RedisProcess, outage: Outage) -> Verdict:
    verdict = Verdict("redis_loss")
    record = Record()
    start = time.monotonic()
    end = start + outage.total_s
    login = {"email": "buyer1@pamtalk.local", "password": "pamtalk-demo"}

    async def mix(number: int) -> None:
        token: str | None = None
        n = 0
        while time.monotonic() < end:
            n += 1
            step = (number + n) % 4
            if step == 0:
                outcome, response = await record.send(
                    http, "session", "POST", "/v1/auth/login", json=login
                )
                if outcome.status == 200 and response is not None:
                    token = response.json()["token"]
            elif step == 1 and token:
                bearer = {"Authorization": f"Bearer {token}"}
                await record.send(http, "session", "GET", "/v1/farms?limit=5", headers=bearer)
            elif step == 2:
                await record.send(http, "api_key", "GET", "/v1/dashboard", headers=service.admin)
            else:
                await record.send(
                    http, "api_key", "GET", "/v1/farms?limit=20", headers=service.admin
                )
            await asyncio.sleep(0.01)

    async with load.client(service.url, outage.clients) as http:
        _, timeline = await asyncio.gather(
            load.workers(outage.clients, mix), outage.inject(start, redis.stop, redis.start)
        )  # redis.stop: SIGKILL

    back = timeline["back"]
    first_login = min(
        (o.ended for o in record.outcomes
         if o.kind == "session" and o.status == 200 and o.began >= back),
        default=None,
    )  # fmt: skip
    # Sessions need the cache (503 cache_unavailable); logins also wait at most a moment
    # for a password-hashing slot (503 busy): both documented, both with Retry-After.
    documented = [
        o for o in record.outcomes
        if o.kind == "session" and o.status == 503 and o.code in ("cache_unavailable", "busy")
        and o.retry_after
    ]  # fmt: skip
    failed_keys = [o for o in record.outcomes if o.kind == "api_key" and o.status != 200]
    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(
        o.status == 0 or (o.status >= 500 and o not in documented) for o in record.outcomes
    )
    verdict.recovery_s = None if first_login is None else round(first_login - back, 2)
    during = record.between(timeline["stopped"], back)
    verdict.measured = {
        "statuses": record.statuses(),
        "during_outage": Record(during).statuses(),
        "sessions_503": len(documented),
        "api_key_failures": len(failed_keys),
        "api_key_p99_ms": load.p99_ms([o for o in record.outcomes if o.kind == "api_key"]),
    }
    if failed_keys:
        verdict.problems.append(f"{len(failed_keys)} API-key requests failed")
    if not any(o.kind == "session" for o in during):
        verdict.problems.append("no session request was made during the outage")
    return verdict.judge()


def redis_loss(folder: Path, outage: Outage = Outage()) -> Verdict:
    """redis-server SIGKILLed and started again on its port under API-key and session traffic."""
    with stack.running(folder / "redis_loss", redis=True) as service:
        assert service.redis is not None
        return asyncio.run(_redis_loss(service, service.redis, outage))


# --- 3. Overload at twice the capacity ----------------------------------------------------


async def _open_loop(
    http: httpx.AsyncClient, record: Record, kind: str, rate: float, seconds: float,
    bound: int, headers: dict[str, str],
) -> None:  # fmt: skip
    """``rate`` requests a second for ``seconds``, at most ``bound`` in flight (beyond it the
    client itself drops the arrival: counted in ``record`` as status -1)."""
    in_flight: set[asyncio.Task[Any]] = set()
    begin = time.monotonic()
    for i in range(int(rate * seconds)):
        await _sleep_until(begin + i / rate)
        if len(in_flight) >= bound:
            now = time.monotonic()
            record.outcomes.append(Outcome(kind, now, now, -1, "client_bound"))
            continue
        task = asyncio.create_task(
            record.send(http, kind, "GET", "/v1/transactions?limit=100", headers=headers)
        )
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


async def _loop_lag(until: Callable[[], bool]) -> list[float]:
    """How late the client's own event loop wakes from a 10 ms sleep: the load generator's
    share of the latencies it measures (it runs on the same cores as the server)."""
    lags = []
    while not until():
        began = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append(time.monotonic() - began - 0.01)
    return lags


def _server_side(log: Path, start: float, end: float) -> dict[str, float | None]:
    """p99 (ms) of the time the app itself took (its access log) for the requests it finished
    between ``start`` and ``end`` (time.time()), admitted and shed."""
    times: dict[str, list[float]] = {"admitted": [], "shed": []}
    for line in log.read_text(errors="replace").splitlines():
        if '"pamtalk.access"' not in line or (
            "/v1/transactions" not in line and "unmatched" not in line
        ):
            continue
        entry = json.loads(line)
        moment = datetime.fromisoformat(entry["ts"]).timestamp()
        if start <= moment <= end:
            shed = entry.get("error_code") == "overloaded"
            times["shed" if shed else "admitted"].append(float(entry["response_time"]))
    return {
        f"server_{kind}_p99_ms": (harness.percentile(sorted(v), 99) if v else None)
        for kind, v in times.items()
    }


async def _overload(service: stack.Stack, cap: int, seconds: float) -> Verdict:
    verdict = Verdict("overload_2x")
    record = Record()
    path = "/v1/transactions?limit=100"
    async with load.client(service.url, 64) as http:
        # Capacity: as many closed-loop clients as the worker admits.
        capacity_end = time.monotonic() + seconds

        async def closed(_: int) -> None:
            while time.monotonic() < capacity_end:
                await record.send(http, "capacity", "GET", path, headers=service.admin)

        await load.workers(cap, closed)
        measured = [o for o in record.outcomes if o.kind == "capacity" and o.status == 200]
        capacity = len(measured) / seconds
        overload_rate = 2 * capacity
        t_overload, wall_overload = time.monotonic(), time.time()
        lag_task = asyncio.create_task(_loop_lag(lambda: time.monotonic() > t_overload + seconds))
        await _open_loop(http, record, "overload", overload_rate, seconds, 64, service.admin)
        t_drop, wall_drop = time.monotonic(), time.time()
        lags = await lag_task
        await _open_loop(http, record, "after", capacity / 2, seconds, 64, service.admin)

    over = [o for o in record.outcomes if o.kind == "overload"]
    admitted = [o for o in over if o.status == 200]
    shed = [o for o in over if o.status in (429, 503)]
    after = [o for o in record.outcomes if o.kind == "after"]
    last_shed = max((o.ended for o in after if o.status != 200), default=t_drop)
    settled = [o for o in after if o.began >= t_drop + seconds / 2]
    verdict.requests = sum(o.status != -1 for o in record.outcomes)
    verdict.errors_5xx = sum(non_retriable(o) for o in record.outcomes if o.status != -1)
    verdict.recovery_s = round(last_shed - t_drop, 2)
    baseline = load.p99_ms(measured)
    verdict.measured = {
        "max_in_flight": cap,
        "capacity_rps": round(capacity, 1),
        "offered_rps": round(overload_rate, 1),
        "achieved_rps": round(len(over) / max(t_drop - t_overload, 1e-9), 1),
        "baseline_p99_ms": baseline,
        "admitted": len(admitted),
        "admitted_p99_ms": load.p99_ms(admitted),
        "shed": len(shed),
        "shed_p99_ms": load.p99_ms(shed),
        "client_loop_lag_p99_ms": round(1000 * harness.percentile(sorted(lags), 99), 1),
        **_server_side(service.log, wall_overload, wall_drop),
        "client_bound_drops": sum(o.status == -1 for o in record.outcomes),
        "after_drop_non_200": sum(o.status != 200 for o in after),
        "after_drop_2nd_half_non_200": sum(o.status != 200 for o in settled),
        "statuses": record.statuses(),
    }
    if not shed:
        verdict.problems.append("nothing was shed: the load did not exceed the capacity")
    if not any(o.status == 200 for o in settled):
        verdict.problems.append("did not serve again after the load dropped")
    elif any(o.status != 200 for o in settled):  # the box's capacity may have moved meanwhile
        verdict.slow.append("still shedding some at half the measured capacity")
    admitted_p99 = verdict.measured["admitted_p99_ms"]
    if baseline and admitted_p99 and admitted_p99 > max(4 * baseline, 1000.0):
        verdict.slow.append(f"admitted p99 {admitted_p99} ms vs {baseline} ms at capacity")
    if any(o.status not in (200, 429, 503, -1) for o in record.outcomes):
        verdict.problems.append("answers other than 200 and a shed 429/503")
    return verdict.judge()


def overload(folder: Path, cap: int = 4, seconds: float = 4.0) -> Verdict:
    """Twice the measured capacity (open loop) against PAMTALK_MAX_IN_FLIGHT=``cap``, then half."""
    env = {"PAMTALK_MAX_IN_FLIGHT": str(cap)}
    with stack.running(folder / "overload", env=env, transactions=2000) as service:
        return asyncio.run(_overload(service, cap, seconds))


# --- 4. The model registry (an MLflow server) down ---------------------------------------


def _esg_rows(rows: int) -> dict[str, Any]:
    """An Open Inference Protocol request for the ESG model."""
    tensors = []
    for name in ("practices", "mask"):
        data = [0.5 if name == "practices" else 1.0] * (rows * ESG_FEATURES)
        tensors.append(
            {"name": name, "shape": [rows, ESG_FEATURES], "datatype": "FP32", "data": data}
        )
    return {"inputs": tensors}


async def _infer_esg(
    http: httpx.AsyncClient, record: Record, service: stack.Stack, versions: list[tuple[float, str]]
) -> None:
    """One OIP request to the ESG model; the version that answered, with when, into
    ``versions``."""
    outcome, response = await record.send(
        http, "infer", "POST", "/v2/models/pamtalk-esg/infer",
        json=_esg_rows(2), headers=service.admin,
    )  # fmt: skip
    if outcome.status == 200 and response is not None:
        versions.append((outcome.ended, response.json()["model_version"]))
    await asyncio.sleep(0.02)


async def _registry_outage(
    service: stack.Stack, server: MlflowServer, promoted: str, watch_s: float, outage: Outage
) -> Verdict:
    # The bound: the watcher's longest backoff (16 intervals), then one sync.
    verdict = Verdict("registry_outage", recovery_bound_s=16 * watch_s + RECOVERY_BOUND_S)
    record = Record()
    versions: list[tuple[float, str]] = []
    start = time.monotonic()
    end = start + outage.total_s

    def promote_meanwhile() -> None:
        server.stop()
        # The data scientist promotes during the outage, in the store the server reads.
        direct = MlflowClient(tracking_uri=server.store_uri, registry_uri=server.store_uri)
        direct.set_registered_model_alias("pamtalk-esg", "champion", promoted)

    async def score(_: int) -> None:
        while time.monotonic() < end or not any(v == promoted for _, v in versions):
            if time.monotonic() > end + verdict.recovery_bound_s + 30:
                return
            await _infer_esg(http, record, service, versions)

    async with load.client(service.url, outage.clients) as http:
        ready, _, timeline = await asyncio.gather(
            _poll_ready(service.url, lambda: time.monotonic() > end),
            load.workers(outage.clients, score),
            outage.inject(start, promote_meanwhile, server.start),
        )

    back = timeline["back"]
    first_new = min((at for at, v in versions if v == promoted), default=None)
    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(o.status != 200 for o in record.outcomes)
    verdict.recovery_s = None if first_new is None else round(max(0.0, first_new - back), 2)
    during = record.between(timeline["stopped"], back)
    not_ready = sum(status != 200 for _, status in ready)
    verdict.measured = {
        "statuses": record.statuses(),
        "answered_during_outage": sum(o.status == 200 for o in during),
        "outage_s": round(back - timeline["stopped"], 2),
        "readyz_not_ready": not_ready,
        "infer_p99_ms": load.p99_ms(record.outcomes),
        "registry_log_lines": _log_lines(service.log, "model registry"),
    }
    if not during:
        verdict.problems.append("no request was made during the outage")
    if not_ready:
        verdict.problems.append(f"/readyz said not ready {not_ready} times")
    if first_new is not None and first_new < back:
        verdict.problems.append("the promotion was applied before the registry was back")
    return verdict.judge()


def _log_lines(log: Path, text: str) -> list[str]:
    return [
        line.strip()[:200] for line in log.read_text(errors="replace").splitlines() if text in line
    ]


WATCH_S = 0.5  # the registry watch interval of the registry scenarios


@contextlib.contextmanager
def _registry_stack(
    root: Path, versions: int
) -> Iterator[tuple[stack.Stack, MlflowServer, list[str]]]:
    """A private MLflow server with tiny champions of both models and ``versions`` more
    (unpromoted) ESG versions, and a stack serving from it."""
    server = MlflowServer(root / "mlflow")
    server.root.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        settings = Settings(mlflow_tracking_uri=server.url)
        client = store.connect(settings)
        defaults.ensure_champions(client, settings, root / "train", say=lambda _: None, tiny=True)
        more = [
            publish.train_and_register(client, settings, "esg", out_dir=root / f"v{i}", tiny=True)[
                1
            ]
            for i in range(versions)
        ]
        env = {
            "PAMTALK_MLFLOW_TRACKING_URI": server.url,
            "PAMTALK_MODEL_WATCH_INTERVAL": str(WATCH_S),
        }
        with stack.running(root, env=env) as service:
            yield service, server, more
    finally:
        server.stop()


def registry_outage(folder: Path, outage: Outage = Outage(outage_s=4.0)) -> Verdict:
    """The MLflow server SIGKILLed under inference load; a version promoted meanwhile."""
    with _registry_stack(folder / "registry_outage", versions=1) as (service, server, (promoted,)):
        return asyncio.run(_registry_outage(service, server, promoted, WATCH_S, outage))


# --- 5. A promoted version whose file is corrupt ------------------------------------------


def _stored_onnx(server: MlflowServer, client: MlflowClient, version: str) -> Path:
    """The registered file itself, in the server's artifact folder."""
    source = str(client.get_model_version("pamtalk-esg", version).source)  # models:/<id>
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    # mlflow-artifacts:/<path> is served from the server's --artifacts-destination.
    return server.root / "artifacts" / urlparse(location).path.lstrip("/") / "model.onnx"


async def _corrupt_version(
    service: stack.Stack, server: MlflowServer, corrupt: str, good: str, seconds: float = 4.0
) -> Verdict:
    verdict = Verdict("corrupt_version", recovery_bound_s=WATCH_S + RECOVERY_BOUND_S)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    path = _stored_onnx(server, client, corrupt)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    record = Record()
    versions: list[tuple[float, str]] = []
    moments: dict[str, float] = {}
    start = time.monotonic()

    async def promote_both() -> None:
        await _sleep_until(start + 2.0)
        moments["corrupt"] = time.monotonic()
        await asyncio.to_thread(
            client.set_registered_model_alias, "pamtalk-esg", "champion", corrupt
        )
        await _sleep_until(moments["corrupt"] + seconds)
        moments["good"] = time.monotonic()
        await asyncio.to_thread(client.set_registered_model_alias, "pamtalk-esg", "champion", good)

    async def score(_: int) -> None:
        while time.monotonic() < start + 2.0 + seconds + verdict.recovery_bound_s + 10:
            if "good" in moments and any(v == good for _, v in versions):
                return
            await _infer_esg(http, record, service, versions)

    async with load.client(service.url, 4) as http:
        await asyncio.gather(load.workers(4, score), promote_both())
        metrics = (await http.get("/metrics")).text

    first_good = min((at for at, v in versions if v == good), default=None)
    served = sorted({v for _, v in versions})
    verdict.requests = len(record.outcomes)
    verdict.errors_5xx = sum(o.status != 200 for o in record.outcomes)
    verdict.recovery_s = None if first_good is None else round(first_good - moments["good"], 2)
    refused = [line for line in metrics.splitlines() if line.startswith("model_refused_total{")]
    verdict.measured = {
        "statuses": record.statuses(),
        "versions_served": served,
        "refused_metric": refused,
        "refusal_log_lines": _log_lines(service.log, "refusing pamtalk-esg"),
    }
    if corrupt in served:
        verdict.problems.append(f"the corrupt version {corrupt} answered")
    if not any(f'version="{corrupt}"' in line and 'reason="corrupt"' in line for line in refused):
        verdict.problems.append("model_refused_total does not show the refusal")
    if len(verdict.measured["refusal_log_lines"]) != 1:
        verdict.problems.append("the refusal was not logged exactly once")
    return verdict.judge()


def corrupt_version(folder: Path) -> Verdict:
    """A version whose stored file has one flipped byte is promoted under load, then a good
    one: the first is refused while the champion serves on, the second is swapped in."""
    with _registry_stack(folder / "corrupt_version", versions=2) as (service, server, (bad, good)):
        return asyncio.run(_corrupt_version(service, server, bad, good))


SCENARIOS: dict[str, Callable[[Path], Verdict]] = {
    "database_restart": database_restart,
    "redis_loss": redis_loss,
    "overload_2x": overload,
    "registry_outage": registry_outage,
    "corrupt_version": corrupt_version,
}

# Scenarios kept in modules of their own: they import Verdict and the helpers above, so they
# are registered here, after those are defined.
from tests.chaos.network_faults import network_faults  # noqa: E402

SCENARIOS["network_faults"] = network_faults

from tests.chaos.ray_faults import ray_replica_kill  # noqa: E402

SCENARIOS["ray_replica_kill"] = ray_replica_kill

from tests.chaos.batch_faults import (  # noqa: E402
    broker_connection_lost,
    broker_node_crash,
    database_outage_past_wait,
    database_restart_mid_chunk,
)

SCENARIOS["broker_connection_lost"] = broker_connection_lost
SCENARIOS["broker_node_crash"] = broker_node_crash
SCENARIOS["database_restart_mid_chunk"] = database_restart_mid_chunk
SCENARIOS["database_outage_past_wait"] = database_outage_past_wait
