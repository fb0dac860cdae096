"""An ONNX Runtime session on the chosen device, run with IO binding on a GPU and warmed up
at its batch-size buckets before it takes traffic."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
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


class Session:
    """``run(inputs) -> outputs`` over one ONNX file, inputs and outputs in graph order."""

    def __init__(
        self, path: Path, device: Device = "auto", threads: int = 0, cache_dir: Path | None = None
    ) -> None:
        providers = choose(device, cache_dir=cache_dir)
        self.session = ort.InferenceSession(
            str(path),
            session_options(threads),
            providers=[name for name, _ in providers],
            provider_options=[options for _, options in providers],
        )
        # ORT drops a GPU provider whose libraries fail to load (and says so in its log):
        # what the session actually got is the truth.
        self.providers: list[str] = list(self.session.get_providers())
        self.on_gpu = any(p in GPU_PROVIDERS for p in self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        if device != "cpu" and not self.on_gpu:
            log.info("serving %s on the CPU (providers: %s)", path.name, self.providers)

    @property
    def device(self) -> str:
        return (
            "cpu"
            if self.providers[0] == CPU
            else self.providers[0].removesuffix("ExecutionProvider").lower()
        )

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self.input_names, inputs, strict=True))
        if not self.on_gpu:
            outputs: list[np.ndarray] = self.session.run(self.output_names, feeds)
            return outputs
        # IO binding: ORT copies each input to the device once and keeps outputs there until
        # the single copy back, instead of staging through its own CPU buffers.
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in self.output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        result: list[np.ndarray] = binding.copy_outputs_to_cpu()
        return result

    def example(self, batch: int) -> list[np.ndarray]:
        """Zeros of the graph's input shapes with ``batch`` rows (dynamic axes -> 1)."""
        arrays = []
        for value in self.session.get_inputs():
            dims = [d if isinstance(d, int) else 1 for d in value.shape[1:]]
            arrays.append(np.zeros((batch, *dims), dtype=_NUMPY_DTYPES.get(value.type, np.float32)))
        return arrays

    def warm_up(self, batches: Iterable[int]) -> None:
        """Run each batch-size bucket once: the first run of a shape allocates memory and,
        on a GPU, picks kernels (TensorRT builds an engine), which no request should wait for."""
        for batch in sorted(set(batches)):
            self.run(self.example(batch))
