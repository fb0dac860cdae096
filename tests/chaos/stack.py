"""The system under a fault: a private PostgreSQL, optionally a private redis-server, and a real
``pamtalk serve`` process on them, all started here and all stopped on exit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from tests.chaos.postgres import Postgres
from tests.chaos.proxy import FaultProxy
from tests.services import RedisProcess


@dataclass
class Stack:
    url: str  # the API's base URL
    admin_key: str
    postgres: Postgres
    redis: RedisProcess | None
    log: Path
    # With ``faulty=True``: the proxies the server reaches PostgreSQL and Redis through.
    db_proxy: FaultProxy | None = None
    redis_proxy: FaultProxy | None = None

    @property
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}


@contextlib.contextmanager
def running(
    folder: Path,
    *,
    redis: bool = False,
    env: dict[str, str] | None = None,
    farms: int = 12,
    transactions: int = 300,
    faulty: bool = False,
) -> Iterator[Stack]:
    """Seeded, migrated and serving (one uvicorn worker). ``env`` adds PAMTALK_ settings;
    ``faulty`` puts a FaultProxy between the server and PostgreSQL (and Redis)."""
    folder.mkdir(parents=True, exist_ok=True)
    postgres = Postgres()
    cache = RedisProcess() if redis else None
    try:
        proxies = contextlib.ExitStack()
        postgres.start()
        if cache is not None:
            cache.start()
        db_proxy = redis_proxy = None
        database_url = postgres.url
        redis_url = cache.url if cache is not None else None
        if faulty:
            db_proxy = proxies.enter_context(FaultProxy(("127.0.0.1", postgres.port)))
            database_url = database_url.replace(f":{postgres.port}/", f":{db_proxy.port}/")
            if cache is not None and redis_url is not None:
                redis_proxy = proxies.enter_context(FaultProxy(("127.0.0.1", cache.port)))
                redis_url = redis_url.replace(f":{cache.port}/", f":{redis_proxy.port}/")
        admin_key = harness.random_key()
        server_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PAMTALK_", "MLFLOW_"))
        }
        server_env |= {
            "PAMTALK_DATABASE_URL": database_url,
            "PAMTALK_ADMIN_API_KEY": admin_key,
            "PAMTALK_ENV": "dev",
            "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
            "PAMTALK_MODEL_WATCH_INTERVAL": "0",
            # The scenarios overload the server from one admin key: admission control, not
            # the per-user rate limit, is what they test.
            "PAMTALK_RATE_LIMITS_ENABLED": "0",
            harness.TOKEN_VARIABLE: admin_key,  # anything the server leaves behind is found
            **(env or {}),
        }
        if redis_url is not None:
            server_env["PAMTALK_REDIS_URL"] = redis_url
        pamtalk = str(harness.BIN / "pamtalk")
        seed = ["db", "seed", "--farms", str(farms), "--transactions", str(transactions)]
        harness.run_step("migrate", [pamtalk, "db", "upgrade"], server_env)
        harness.run_step("seed", [pamtalk, *seed, "--days", "30"], server_env)
        harness.run_step("init", [pamtalk, "init", "--no-models"], server_env)
        log = folder / "server.log"
        with harness.pamtalk_serve(server_env, log, timeout=60) as (url, _):
            yield Stack(url, admin_key, postgres, cache, log, db_proxy, redis_proxy)
    finally:
        proxies.close()
        if cache is not None:
            cache.stop()
        postgres.destroy()
