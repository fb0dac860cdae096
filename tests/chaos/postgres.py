"""A private PostgreSQL cluster (initdb + pg_ctl on a spare port in a temporary folder) that a
fault-injection scenario can stop and start: never the machine's shared server.

Run as the ``postgres`` user when the suite runs as root (PostgreSQL refuses root)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench import harness


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def available() -> bool:
    return _bin_dir() is not None


class Postgres:
    """``start()`` once to create the cluster; ``stop()`` (``pg_ctl stop -m fast``) and
    ``start()`` again are the fault; ``destroy()`` (also at exit) removes everything."""

    def __init__(self, database: str = "chaos", *, fsync: bool = False) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        self.bin = bin_dir
        self.port = harness.free_port()
        self.database = database
        self.fsync = fsync  # off for the fault scenarios: they measure recovery, not commits
        self.folder = Path(tempfile.mkdtemp(prefix="pamtalk-chaos-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.created = False
        atexit.register(self.destroy)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str) -> None:
        argv = [str(self.bin / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        if not self.created:
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=60"
        )
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)  # fmt: skip
        if not self.created:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                      self.database)  # fmt: skip
            self.created = True

    def stop(self) -> None:
        """The fault: a fast shutdown, which ends every connection the server holds."""
        self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))
        shutil.rmtree(self.folder, ignore_errors=True)
