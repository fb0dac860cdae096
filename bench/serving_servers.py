"""The four servers bench/serving.py compares: how each is started, how a request body is
encoded for it and its answer decoded, and the wait until it answers a prediction.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench import harness
from bench.serving_setup import FEATURES, MODEL, Setup

SERVERS = ("ours-local", "ours-ray", "ray-serve", "mlflow")
SCRIPT = harness.ROOT / "bench" / "serving.py"  # its --ray-peer runs bench/serving_ray_peer.py

Encode = Callable[[np.ndarray, np.ndarray], bytes]
Decode = Callable[[bytes], np.ndarray]


# --- request bodies and answers, per protocol ---------------------------------------------


def encode_oip(practices: np.ndarray, mask: np.ndarray) -> bytes:
    def tensor(name: str, values: np.ndarray) -> dict[str, Any]:
        return {"name": name, "shape": [1, FEATURES], "datatype": "FP32", "data": values.tolist()}

    return orjson.dumps({"inputs": [tensor("practices", practices), tensor("mask", mask)]})


def decode_oip(body: bytes) -> np.ndarray:
    (output,) = orjson.loads(body)["outputs"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def encode_ray(practices: np.ndarray, mask: np.ndarray) -> bytes:
    return orjson.dumps({"practices": practices.tolist(), "mask": mask.tolist()})


def decode_ray(body: bytes) -> np.ndarray:
    return np.asarray(orjson.loads(body)["scores"], dtype=np.float32)[None]


def encode_mlflow(practices: np.ndarray, mask: np.ndarray) -> bytes:
    return orjson.dumps({"inputs": {"practices": [practices.tolist()], "mask": [mask.tolist()]}})


def decode_mlflow(body: bytes) -> np.ndarray:
    predictions = orjson.loads(body)["predictions"]
    if isinstance(predictions, dict):  # one entry per output tensor
        predictions = predictions["scores"]
    return np.asarray(predictions, dtype=np.float32)


# --- servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """How to start one server and talk to it."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    infer_path: str
    encode: Encode
    decode: Decode
    headers: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def post_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


def base_env(setup: Setup) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMTALK_", "RAY_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {
        **env,
        "PATH": f"{harness.BIN}{os.pathsep}{env.get('PATH', '')}",  # mlflow execs `uvicorn`
        harness.TOKEN_VARIABLE: setup.token,
        "RAY_TMPDIR": str(setup.ray_tmp),
    }


def ours_env(setup: Setup, backend: str) -> dict[str, str]:
    return {
        **base_env(setup),
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": setup.database_url,
        "PAMTALK_MLFLOW_TRACKING_URI": setup.store_uri,
        "PAMTALK_ADMIN_API_KEY": setup.admin_key,
        "PAMTALK_SERVING_BACKEND": backend,
        "PAMTALK_SERVING_PRECISION": "fp32",
        "PAMTALK_DEVICE": "cpu",
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        "PAMTALK_LOG_LEVEL": "WARNING",
        # Serving is measured from one API key: no per-user rate limit in the way.
        "PAMTALK_RATE_LIMITS_ENABLED": "0",
    }


def ours(setup: Setup, backend: str) -> Target:
    port = harness.free_port()
    return Target(
        name=f"ours-{backend}",
        command=[str(harness.BIN / "pamtalk"), "serve", "--port", str(port)],
        env=ours_env(setup, backend),
        port=port,
        ready_path="/v2/health/ready",
        infer_path=f"/v2/models/{MODEL}/infer",
        encode=encode_oip,
        decode=decode_oip,
        headers={"X-API-Key": setup.admin_key},
        ready_timeout_s=300.0 if backend == "ray" else 120.0,
    )


def ray_peer(setup: Setup) -> Target:
    port = harness.free_port()
    script = [sys.executable, str(SCRIPT)]
    return Target(
        name="ray-serve",
        command=[*script, "--ray-peer", str(setup.onnx_path), "--port", str(port)],
        env=base_env(setup),
        port=port,
        ready_path="/-/healthz",
        infer_path="/",
        encode=encode_ray,
        decode=decode_ray,
        ready_timeout_s=300.0,
    )


def mlflow_server(setup: Setup) -> Target:
    port = harness.free_port()
    model_uri = f"models:/{MODEL}/{setup.version}"
    return Target(
        name="mlflow",
        command=[
            *(str(harness.BIN / "mlflow"), "models", "serve", "-m", model_uri),
            *("--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(port)),
        ],
        env={**base_env(setup), "MLFLOW_TRACKING_URI": setup.store_uri},
        port=port,
        ready_path="/ping",
        infer_path="/invocations",
        encode=encode_mlflow,
        decode=decode_mlflow,
    )


def target(name: str, setup: Setup) -> Target:
    if name.startswith("ours-"):
        return ours(setup, name.removeprefix("ours-"))
    return ray_peer(setup) if name == "ray-serve" else mlflow_server(setup)


def first_answer(
    server: Target, proc: subprocess.Popen[bytes], body: bytes, log: Path
) -> np.ndarray:
    """Polls the ready path, then a prediction, until both answer 200; returns the scores
    (``harness.NotReady`` if the server exits or times out first)."""
    answers: list[np.ndarray] = []
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:

        def answered() -> bool:
            if client.get(server.ready_path).status_code == 200:
                answer = client.post(server.infer_path, content=body, headers=server.post_headers)
                if answer.status_code == 200:
                    answers.append(server.decode(answer.content))
            return bool(answers)

        harness.wait_until(answered, proc, log, server.ready_timeout_s, interval=0.5)
    return answers[0]
