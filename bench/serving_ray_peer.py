"""The plain Ray Serve peer of bench/serving.py: the ESG ONNX graph in one replica, single-row
JSON requests batched by ``@serve.batch``. Started as ``bench/serving.py --ray-peer ONNX
--port P`` in its own process (it imports Ray Serve, which the rest of the benchmark need not).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from ray import serve
from starlette.requests import Request


@serve.deployment(max_ongoing_requests=128)  # Ray's default (5) would cap a batch at 5
class EsgOnnx:
    """The ESG ONNX graph in one ONNX Runtime session; single-row JSON requests are batched
    by ``@serve.batch`` into one session call."""

    def __init__(self, onnx_path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as ours (PAMTALK_SERVING_THREADS=1)
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def predict(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        practices = np.stack([p for p, _ in rows])  # [B, 34]
        mask = np.stack([m for _, m in rows])  # [B, 34]
        (scores,) = self.session.run(None, {"practices": practices, "mask": mask})  # [B, 4, 3]
        return list(scores)

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        row = (
            np.asarray(body["practices"], dtype=np.float32),
            np.asarray(body["mask"], dtype=np.float32),
        )
        scores: np.ndarray = await self.predict(row)
        return {"scores": scores.tolist()}


def run_ray_peer(onnx_path: Path, port: int) -> None:
    """Serves ``EsgOnnx`` on ``port`` until SIGTERM (a fresh local Ray cluster). Its replica
    imports this module as ``bench.serving_ray_peer``: Ray gives its workers the driver's
    working directory (the repository root) on ``sys.path``."""
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(EsgOnnx.bind(str(onnx_path)), name="esg", route_prefix="/")  # type: ignore[attr-defined]
    print("ray-serve peer ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
