"""What ``pamtalk gpu info`` reports: the runtimes, the GPUs they see and the providers that
``PAMTALK_DEVICE`` would give a model."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
import torch

from pamtalk.gpu.providers import Device, DeviceUnavailable, available, choose


def describe(device: Device) -> dict[str, Any]:
    gpus = [
        {
            "index": i,
            "name": torch.cuda.get_device_name(i),
            "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
        }
        for i in range(torch.cuda.device_count())
    ]
    try:
        chosen: list[str] | str = [name for name, _ in choose(device)]
    except DeviceUnavailable as exc:
        chosen = f"error: {exc.message}"
    return {
        "device_setting": device,
        "onnxruntime": ort.__version__,
        "onnxruntime_device": ort.get_device(),
        "providers_available": available(),
        "providers_chosen": chosen,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpus": gpus,
    }
