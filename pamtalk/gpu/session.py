"""ONNX Runtime sessions on the chosen device: options, IO binding on a GPU, and warm-up
inputs. The model runtime (pamtalk.serving.runtime.OnnxModel) is built on these."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pamtalk.gpu.providers import CPU, GPU_PROVIDERS, Device, choose

log = logging.getLogger(__name__)

_NUMPY_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # 0 lets ORT use every core; a box running several workers wants a few each.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def open_session(
    path: Path, device: Device = "auto", threads: int = 0, cache_dir: Path | None = None
) -> ort.InferenceSession:
    providers = choose(device, cache_dir=cache_dir)
    session = ort.InferenceSession(
        str(path),
        session_options(threads),
        providers=[name for name, _ in providers],
        provider_options=[options for _, options in providers],
    )
    if device != "cpu" and not on_gpu(session):
        log.info("serving %s on the CPU (providers: %s)", path.name, session.get_providers())
    return session


def on_gpu(session: ort.InferenceSession) -> bool:
    # ORT drops a GPU provider whose libraries fail to load (and says so in its log): what
    # the session actually got is the truth.
    return any(p in GPU_PROVIDERS for p in session.get_providers())


def device_of(session: ort.InferenceSession) -> str:
    """The provider that runs the graph first: "cpu", "cuda" or "tensorrt"."""
    first = str(session.get_providers()[0])
    return "cpu" if first == CPU else first.removesuffix("ExecutionProvider").lower()


def run_bound(
    session: ort.InferenceSession, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]
) -> list[np.ndarray]:
    """A run with IO binding: ORT copies each input to the device once and keeps outputs
    there until the single copy back, instead of staging through its own CPU buffers."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(array))
    for name in output_names:
        binding.bind_output(name, "cuda")
    session.run_with_iobinding(binding)
    outputs: list[np.ndarray] = binding.copy_outputs_to_cpu()
    return outputs


def example_inputs(session: ort.InferenceSession, batch: int) -> list[np.ndarray]:
    """Zeros of the graph's input shapes with ``batch`` rows (dynamic axes -> 1)."""
    arrays = []
    for value in session.get_inputs():
        dims = [d if isinstance(d, int) else 1 for d in value.shape[1:]]
        arrays.append(np.zeros((batch, *dims), dtype=_NUMPY_DTYPES.get(value.type, np.float32)))
    return arrays
