"""A TCP forwarder between clients and a server, as a process of its own: killing it is a
lost network connection (every client's connection drops, new ones are refused) while the
server behind it lives on. Started again on the same port, it is the network coming back.
(proxy.py's FaultProxy, in the scenario's own process, delays or partitions instead: the
connections stay open and the bytes wait.)

    python -m tests.chaos.tcp_proxy LISTEN_PORT UPSTREAM_PORT     # both on 127.0.0.1
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench import harness

HOST = "127.0.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _forward(
    upstream: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(HOST, upstream)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))


async def serve(listen: int, upstream: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: _forward(upstream, r, w), HOST, listen, reuse_address=True
    )
    async with server:
        await server.serve_forever()


class Proxy:
    """The forwarder as a child process: ``start()``, ``kill()`` (SIGKILL: the kernel closes
    every connection it held), ``start()`` again on the same port."""

    def __init__(self, upstream: int, log: Path, env: Mapping[str, str]) -> None:
        self.port = harness.free_port()
        self.upstream = upstream
        self.log, self.env = log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 10.0) -> None:
        command = [
            sys.executable,
            "-m",
            "tests.chaos.tcp_proxy",
            str(self.port),
            str(self.upstream),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=dict(self.env), cwd=harness.ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited: {harness.log_tail(self.log)}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the proxy did not listen within {within} s")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
