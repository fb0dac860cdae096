"""A TCP fault proxy: forwards a port to another and, on command, delays every chunk or
stops forwarding (a partition: the bytes wait, as TCP's retransmissions would make them, and
flow again when it heals). It runs its own event loop in a thread, so the scenario's load
client is not slowed by the bytes it forwards.

    with FaultProxy(("127.0.0.1", 5432)) as proxy:   # proxy.port forwards to 5432
        proxy.delay_s = 0.2                            # each chunk, each way
        proxy.partition()                              # nothing flows until proxy.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType

from bench import harness


class FaultProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = harness.free_port()
        self.delay_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def partition(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def heal(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            self._flowing.set()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        except asyncio.CancelledError:
            pass  # the proxy is closing: asyncio would log a cancelled connection handler
        finally:
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Chunks go through a queue with their arrival time, so a delay shifts them all
        # without reordering, and reading goes on while they wait.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                arrived, chunk = await queue.get()
                if not chunk:
                    writer.write_eof() if writer.can_write_eof() else writer.close()
                    return
                await self._flowing.wait()
                await asyncio.sleep(max(0.0, arrived + self.delay_s - time.monotonic()))
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((time.monotonic(), chunk))
            queue.put_nowait((time.monotonic(), b""))
            await sender
        except (OSError, asyncio.IncompleteReadError):
            sender.cancel()
