"""A model version taking traffic, and the backends that put one up: in-process ONNX Runtime
(``local``) or Ray Serve (``ray``, in ray_backend.py). Both feed a DynamicBatcher, so the
front batches the same way whichever runs the model."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from pamtalk.models.contract import ModelContract
from pamtalk.serving.batcher import BatchPolicy, DynamicBatcher
from pamtalk.serving.runtime import Artifact, load_runtime
from pamtalk.settings import Settings


class Deployment:
    """Counts the requests using it, so that a retiring version finishes them first."""

    def __init__(
        self,
        artifact: Artifact,
        contract: ModelContract,
        batcher: DynamicBatcher,
        device: str,
        release: Callable[[], Awaitable[None]],
    ) -> None:
        self.artifact, self.contract, self.batcher = artifact, contract, batcher
        self.device, self._release = device, release
        self._users = 0
        self._unused = asyncio.Event()
        self._unused.set()

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def version(self) -> str:
        return self.artifact.version

    async def infer(self, inputs: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
        return await self.batcher.submit(inputs, rows)

    def hold(self) -> None:
        self._users += 1
        self._unused.clear()

    def let_go(self) -> None:
        self._users -= 1
        if not self._users:
            self._unused.set()

    async def retire(self) -> None:
        await self._unused.wait()
        await self.batcher.close()
        await self._release()


class Backend(Protocol):
    async def deploy(self, artifact: Artifact, contract: ModelContract) -> Deployment: ...
    async def close(self) -> None: ...


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=settings.serving_max_batch_size,
        max_wait=settings.serving_max_wait_ms / 1000,
        max_queue_rows=settings.serving_max_queue_rows,
        parallelism=settings.serving_parallelism,
        timeout=settings.serving_timeout_s,
    )


def warmup_batches(settings: Settings) -> list[int]:
    return sorted({1, *settings.serving_warmup_batches, settings.serving_max_batch_size})


class LocalBackend:
    """ONNX Runtime in this process; batches run in a small thread pool, off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def deploy(self, artifact: Artifact, contract: ModelContract) -> Deployment:
        s = self.settings
        model = await asyncio.to_thread(
            load_runtime, artifact, contract, s.device, s.serving_threads, warmup_batches(s)
        )
        policy = batch_policy(self.settings)
        pool = ThreadPoolExecutor(policy.parallelism, thread_name_prefix=f"{artifact.name}-v")
        loop = asyncio.get_running_loop()

        async def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            return await loop.run_in_executor(pool, model.predict, inputs)

        async def release() -> None:
            pool.shutdown(wait=True)
            model.unload()

        batcher = DynamicBatcher(run, artifact.name, artifact.version, policy)
        return Deployment(artifact, contract, batcher, model.device, release)

    async def close(self) -> None:
        return None
