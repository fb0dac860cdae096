"""Static int8 quantization with ONNX Runtime (QDQ, calibrated on a sample of the training
inputs), and CPU latency measured side by side.

Static, not dynamic: dynamic quantization picks each activation's scale from the batch it
is in, so a row's answer depends on its batch-mates; a calibrated graph has fixed scales and
every row is computed alone (tests/training/test_int8.py shows both)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from pamtalk.models.contract import ModelContract
from pamtalk.models.onnx_graph import predictor, session

BATCH_SIZES = (1, 64)
# How the int8 file was made, a tag of its run: serving takes only batch-invariant files.
SCHEME = "static-qdq"
CALIBRATION_ROWS = 2048  # rows drawn from the training inputs to fix the activation ranges
_CALIBRATION_BATCH = 256
# Only the linear layers with at least this many inputs are quantized: that is where the
# time goes, and their inputs are scale-free (the demand network divides by the series'
# level, the ESG features are 0..1). The few-input ones (the demand network's 3 same-weekday
# references, its calendar) cost little in float32 and carry the widest-ranging values.
MIN_QUANTIZED_FAN_IN = 32


class _Calibration(CalibrationDataReader):  # type: ignore[misc]  # untyped base
    """The calibration sample in batches, as ONNX Runtime's calibrator reads it."""

    def __init__(self, contract: ModelContract, inputs: Sequence[np.ndarray]) -> None:
        names = [spec.name for spec in contract.inputs]
        rows = len(inputs[0])
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [
                {
                    n: np.ascontiguousarray(a[i : i + _CALIBRATION_BATCH], np.float32)
                    for n, a in zip(names, inputs, strict=True)
                }
                for i in range(0, rows, _CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_rows(total: int, rows: int = CALIBRATION_ROWS, seed: int = 0) -> np.ndarray:
    """Indices of up to ``rows`` of ``total`` training rows, drawn without replacement."""
    return np.sort(np.random.default_rng(seed).permutation(total)[: min(rows, total)])


def quantize_int8(
    src: Path, dst: Path, contract: ModelContract, calibration: Sequence[np.ndarray]
) -> Path:
    """Weights int8 per output channel, activations uint8 with ranges fixed by
    ``calibration``. Min-max calibration: a regression network has no outliers to spare, and
    clipping the largest activations would bias the largest forecasts. The layers' outputs
    stay float32 (DequantizeLinear only on their inputs): measured, that is both faster
    (ONNX Runtime fuses it into an integer matmul with a float output, e.g. QGemm) and closer
    to fp32 than requantizing (docs/models.md, Quantization)."""
    prepared = dst.with_name(dst.stem + ".prep.onnx")
    quant_pre_process(str(src), str(prepared))  # shape inference + graph cleanup first
    try:
        quantize_static(
            str(prepared),
            str(dst),
            _Calibration(contract, calibration),
            quant_format=QuantFormat.QDQ,
            nodes_to_quantize=_wide_linear_layers(onnx.load(str(prepared)).graph),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"OpTypesToExcludeOutputQuantization": list(_LINEAR)},
        )
    finally:
        prepared.unlink(missing_ok=True)
    onnx.checker.check_model(onnx.load(str(dst)))
    return dst


_LINEAR = ("MatMul", "Gemm")


def _wide_linear_layers(graph: onnx.GraphProto) -> list[str]:
    """Names of the MatMul/Gemm nodes whose constant weight has >= MIN_QUANTIZED_FAN_IN
    inputs."""
    weights = {w.name: list(w.dims) for w in graph.initializer}
    wide = []
    for node in graph.node:
        if node.op_type not in _LINEAR or len(dims := weights.get(node.input[1], [])) != 2:
            continue
        transposed = node.op_type == "Gemm" and any(
            a.name == "transB" and a.i == 1 for a in node.attribute
        )
        if dims[1 if transposed else 0] >= MIN_QUANTIZED_FAN_IN:
            wide.append(node.name)
    return wide


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
