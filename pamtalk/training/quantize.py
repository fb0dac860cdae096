"""int8 dynamic quantization with ONNX Runtime, and CPU latency measured side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from pamtalk.models.contract import ModelContract
from pamtalk.models.onnx_graph import predictor, session

BATCH_SIZES = (1, 64)


def quantize_int8(src: Path, dst: Path) -> Path:
    """Weights to int8, activations quantized on the fly: no calibration data needed, and the
    MatMul/Gemm-heavy graphs of these models are where it pays."""
    prepared = dst.with_name(dst.stem + ".prep.onnx")
    quant_pre_process(str(src), str(prepared))  # shape inference + graph cleanup first
    quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    prepared.unlink()
    onnx.checker.check_model(onnx.load(str(dst)))
    return dst


def latencies(
    paths: dict[str, Path],
    contract: ModelContract,
    inputs_for: Callable[[int], Sequence[np.ndarray]],
    batch_sizes: Sequence[int] = BATCH_SIZES,
    repeats: int = 60,
) -> dict[str, dict[int, float]]:
    """Median milliseconds per call for each model at each batch size. The models take turns
    call by call, so machine noise hits them alike and their ratio is fair."""
    predictors = {name: predictor(session(path), contract) for name, path in paths.items()}
    result: dict[str, dict[int, float]] = {name: {} for name in paths}
    for batch in batch_sizes:
        inputs = inputs_for(batch)
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(5):  # warm-up
            for predict in predictors.values():
                predict(*inputs)
        for _ in range(repeats):
            for name, predict in predictors.items():
                start = time.perf_counter()
                predict(*inputs)
                samples[name].append((time.perf_counter() - start) * 1000)
        for name in paths:
            result[name][batch] = statistics.median(samples[name])
    return result


def tile_batch(example: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    """A batch of ``batch`` rows made by repeating the example rows."""
    reps = -(-batch // len(example[0]))
    return [np.concatenate([a] * reps)[:batch].astype(np.float32) for a in example]
