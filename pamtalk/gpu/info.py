"""What ``pamtalk gpu info`` reports: the runtimes, the GPUs they see and the providers that
``PAMTALK_DEVICE`` would give a model."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort

from pamtalk import extras
from pamtalk.gpu.providers import Device, DeviceUnavailable, available, choose


def _torch() -> dict[str, Any]:
    """What PyTorch sees (the GPUs, by name and memory), or that it is not installed:
    serving needs only ONNX Runtime."""
    try:
        with extras.needs("train", "PyTorch's view of the GPUs"):
            import torch
    except extras.MissingExtra as exc:
        return {"torch": f"not installed (pip install 'pamtalk[{exc.extra}]')"}
    gpus = [
        {
            "index": i,
            "name": torch.cuda.get_device_name(i),
            "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
        }
        for i in range(torch.cuda.device_count())
    ]
    return {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "gpus": gpus}


def describe(device: Device) -> dict[str, Any]:
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
        **_torch(),
    }
