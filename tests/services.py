"""Reaching the real services (PostgreSQL, Redis) the tests run against.

A test that needs a service skips when it is not reachable, unless PAMTALK_REQUIRE_SERVICES=1
(CI), where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bench import harness

free_port = harness.free_port  # the benchmarks' own, as is wait_until_up's polling

REQUIRE = os.environ.get("PAMTALK_REQUIRE_SERVICES") == "1"
DATABASE_URL = os.environ.get(
    "PAMTALK_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PAMTALK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), 1):
            return True
    except OSError:
        return False


def need(url: str, default_port: int, what: str) -> None:
    if reachable(url, default_port):
        return
    if REQUIRE:
        pytest.fail(f"{what} at {url} is not reachable and PAMTALK_REQUIRE_SERVICES=1")
    pytest.skip(f"{what} at {url} is not reachable")


async def create_database() -> str:
    """A fresh, empty PostgreSQL database for this test run; returns its SQLAlchemy URL."""
    need(DATABASE_URL, 5432, "PostgreSQL")
    url = make_url(DATABASE_URL)
    name = f"pamtalk_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    conn = await asyncpg.connect(_dsn(url.set(database=make_url(DATABASE_URL).database)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


def _dsn(url: object) -> str:
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))  # type: ignore[attr-defined]


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200 (``bench.harness.wait_until_up``); if the process
    dies or time runs out, kill it and fail with the tail of its log."""
    try:
        harness.wait_until_up(url, process, log, timeout)
    except harness.NotReady as exc:
        process.kill()
        pytest.fail(f"{url} did not come up: {exc}")


def tool(name: str, install: str) -> str:
    """The path of the command-line tool ``name`` (this venv's bin first, then PATH); skips,
    or under PAMTALK_REQUIRE_SERVICES=1 fails, saying how to install it."""
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which(name, path=search)
    if found is None:
        message = f"{name} is not installed ({install})"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return found


class RedisProcess:
    """A private redis-server on a spare port that the test can stop and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if REQUIRE:
                pytest.fail("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(100):
            if reachable(self.url, self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


class MlflowServer:
    """A private ``mlflow server`` (sqlite store, local artifacts in ``root``) on a spare port
    that the test can stop and start again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_uri(self) -> str:
        """The server's own store, for changing the registry behind its back."""
        return f"sqlite:///{self.root}/mlflow.db"

    def start(self) -> None:
        mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
        assert mlflow is not None
        log = self.root / "server.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    *(mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port)),
                    *("--backend-store-uri", self.store_uri),
                    *("--artifacts-destination", (self.root / "artifacts").as_uri()),
                    *("--workers", "1"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_up(f"{self.url}/health", self.process, log, timeout=120)

    def stop(self) -> None:
        """Killed, with its workers (the whole session), as a crash would."""
        if self.process:
            os.killpg(self.process.pid, 9)
            self.process.wait()
            self.process = None
