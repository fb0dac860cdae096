"""Which ONNX Runtime execution providers to use: TensorRT, then CUDA, then CPU.

``PAMTALK_DEVICE=auto`` takes the best one present and falls back to the CPU; ``cuda`` refuses
to start without a GPU provider rather than silently serving from the CPU; ``cpu`` never
touches a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from pamtalk.errors import ServiceUnavailable

Device = Literal["auto", "cpu", "cuda"]
TENSORRT, CUDA, CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
GPU_PROVIDERS = (TENSORRT, CUDA)

ProviderSpec = tuple[str, dict[str, Any]]


class DeviceUnavailable(ServiceUnavailable):
    code = "device_unavailable"


def available() -> list[str]:
    return list(ort.get_available_providers())


def choose(
    device: Device,
    present: Sequence[str] | None = None,
    device_id: int = 0,
    cache_dir: Path | None = None,
) -> list[ProviderSpec]:
    """Providers with their options, best first; the CPU is always last as ORT's fallback
    for operators a GPU provider lacks."""
    present = available() if present is None else present
    if device == "cpu":
        return [(CPU, {})]
    gpus = [name for name in GPU_PROVIDERS if name in present]
    if device == "cuda" and not gpus:
        raise DeviceUnavailable(
            "PAMTALK_DEVICE=cuda but ONNX Runtime has no GPU provider "
            f"(present: {', '.join(present)}); pip install 'pamtalk[gpu]' (onnxruntime-gpu) "
            "or set it to auto"
        )
    specs: list[ProviderSpec] = []
    for name in gpus:
        if name == TENSORRT:
            options: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": True}
            if cache_dir is not None:
                # Building a TensorRT engine takes seconds to minutes; keep it across restarts.
                cache_dir.mkdir(parents=True, exist_ok=True)
                options |= {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir),
                }
            specs.append((name, options))
        else:
            specs.append(
                (name, {"device_id": device_id, "arena_extend_strategy": "kSameAsRequested"})
            )
    return [*specs, (CPU, {})]
