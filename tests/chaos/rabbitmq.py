"""A private RabbitMQ node (``rabbitmq-server`` with its own node name, ports, Mnesia, logs,
Erlang cookie and epmd, in a temporary folder): never the machine's shared broker on 5672.

It starts in about 5 s here. Every process it runs (epmd, the shell wrapper, beam.smp and the
helpers that leave its process group, erl_child_setup and inet_gethost) carries the run's
token in its environment, so ``destroy()`` finds them all."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench import harness

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the Debian package's, not the su wrapper


def available() -> bool:
    return SERVER.exists() and shutil.which("epmd") is not None


class RabbitMQ:
    def __init__(self) -> None:
        if not available():
            raise RuntimeError("rabbitmq-server (and Erlang's epmd) is not installed")
        self.folder = Path(tempfile.mkdtemp(prefix="pamtalk-chaos-rabbitmq-"))
        self.port = harness.free_port()
        self.token = f"rabbitmq-{uuid.uuid4().hex}"
        self.name = f"chaos{uuid.uuid4().hex[:8]}@localhost"
        epmd = harness.free_port()
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.folder),  # its own Erlang cookie
            "ERL_EPMD_PORT": str(epmd),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(harness.free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            harness.TOKEN_VARIABLE: self.token,
        }
        self.log = self.folder / "server.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        atexit.register(self.destroy)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, within: float = 60.0) -> float:
        """Start the node (its own epmd first); returns the seconds until it took a connection."""
        started = time.monotonic()
        epmd = ["epmd", "-port", self.env["ERL_EPMD_PORT"], "-address", "127.0.0.1"]
        with self.log.open("ab") as out:
            for command in (epmd, [str(SERVER)]):
                process = subprocess.Popen(
                    command,
                    env=self.env,
                    cwd=self.folder,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                self.processes.append(process)
                time.sleep(0.2)  # epmd listening before the node registers with it
        deadline = started + within
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"rabbitmq-server exited:\n{harness.log_tail(self.log, 30)}")
            if self._accepts():
                return time.monotonic() - started
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq-server not up in {within} s:\n{harness.log_tail(self.log)}")

    def _accepts(self) -> bool:
        """Whether the node answers an AMQP 0-9-1 protocol header with its Connection.Start
        (a method frame): booted, not just listening."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 1) as sock,
        ):
            sock.settimeout(2)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"
        return False

    def pids(self) -> list[int]:
        return harness.tagged_pids(self.token)

    def crash(self) -> None:
        """Every process of the node SIGKILLed: no clean shutdown, nothing flushed on the way
        out. Its data folder stays, so ``start()`` boots the same node, with whatever its
        durable queues had on disk."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap()

    def destroy(self) -> None:
        harness.kill_tagged(self.token)
        self._reap()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _reap(self) -> None:
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes = []
