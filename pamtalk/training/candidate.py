"""From a trained network to a registrable candidate: ONNX export (fp32), parity with
PyTorch, static int8 quantization (calibrated on the training inputs) with its own parity,
contract check and metric change, CPU latency of both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pamtalk.models.contract import ModelContract
from pamtalk.training import onnx_export, quantize
from pamtalk.training.result import Evaluate

# fp32 parity: |ONNX Runtime - PyTorch| <= 1e-4 + 1e-5 x (the example's largest |output|):
# 1e-4 for the 0..100 scores; demand in kg (up to ~1e6) is held to float32's resolution.
FP32_ATOL, FP32_RTOL = 1e-4, 1e-5
INT8_MAX_WORSE = 0.01  # int8 may be at most 1 % (relative) worse on the main metric


class ParityError(RuntimeError):
    pass


@dataclass
class Candidate:
    contract: ModelContract
    fp32: Path
    int8: Path | None  # the int8 export, logged as a reference even when not served
    metrics: dict[str, float]
    params: dict[str, Any]
    example_inputs: tuple[np.ndarray, ...]
    fingerprint: str
    table: str
    plots: dict[str, Path] = field(default_factory=dict)
    int8_ok: bool = False  # within INT8_MAX_WORSE: serving may use it on CPU
    report: str = ""


def build(
    model: nn.Module,
    contract: ModelContract,
    *,
    example_inputs: Sequence[np.ndarray],
    eval_inputs: Sequence[np.ndarray],
    calibration_inputs: Sequence[np.ndarray],
    evaluate: Evaluate,
    metrics: dict[str, float],
    params: dict[str, Any],
    fingerprint: str,
    table: str,
    plots: dict[str, Path],
    out_dir: Path,
) -> Candidate:
    fp32 = onnx_export.export(model, example_inputs, contract, out_dir / "model.onnx")
    if problems := onnx_export.contract_violations(fp32, contract):
        raise ParityError(f"exported graph breaks the contract: {problems}")
    fp32_diff, fp32_relative = onnx_export.parity(model, fp32, contract, eval_inputs, FP32_ATOL)
    if fp32_relative > FP32_RTOL:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by up to {fp32_diff:.2e} ({fp32_relative:.1e} of "
            f"the example's scale beyond {FP32_ATOL}; allowed {FP32_RTOL})"
        )
    int8 = quantize.quantize_int8(fp32, out_dir / "model.int8.onnx", contract, calibration_inputs)
    int8_diff, int8_relative = onnx_export.parity(model, int8, contract, eval_inputs)
    main = contract.main_metric
    fp32_metrics = evaluate(onnx_export.predictor(onnx_export.session(fp32), contract))
    int8_metrics = evaluate(onnx_export.predictor(onnx_export.session(int8), contract))
    sign = 1.0 if contract.metric_goal == "min" else -1.0
    worse = sign * (int8_metrics[main] - fp32_metrics[main]) / max(abs(fp32_metrics[main]), 1e-12)

    speed = quantize.latencies(
        {"fp32": fp32, "int8": int8},
        contract,
        lambda batch: quantize.tile_batch(example_inputs, batch),
    )
    metrics = {
        **metrics,
        "onnx_fp32_max_abs_diff": fp32_diff,
        "onnx_fp32_max_relative_diff": fp32_relative,
        "onnx_int8_max_abs_diff": int8_diff,
        f"int8_{main}": int8_metrics[main],
        "int8_relative_worse": worse,
        **{f"latency_ms_{kind}_b{b}": ms for kind, by in speed.items() for b, ms in by.items()},
        **{f"int8_speedup_b{b}": speed["fp32"][b] / speed["int8"][b] for b in speed["fp32"]},
    }
    # Served in fp32's place: its graph must keep the contract too.
    int8_problems = onnx_export.contract_violations(int8, contract)
    accepted = worse <= INT8_MAX_WORSE and not int8_problems
    verdict = (
        "int8 served on CPU"
        if accepted
        else f"fp32 served; int8 kept for reference (breaks the contract: {int8_problems})"
        if int8_problems
        else f"fp32 served; int8 kept for reference (more than {INT8_MAX_WORSE:.0%} worse)"
    )
    report = "\n".join(
        [
            f"ONNX fp32 export matches PyTorch: largest difference {fp32_diff:.2g} "
            f"({fp32_relative:.1e} of the output's scale beyond {FP32_ATOL}; limit {FP32_RTOL})",
            f"int8 quantization: {main} {fp32_metrics[main]:.4f} (fp32) -> "
            f"{int8_metrics[main]:.4f} ({worse:+.2%}); outputs within {int8_relative:.1%} of "
            f"the output's scale of fp32's; {verdict}",
            *(
                f"CPU latency batch {b}: fp32 {speed['fp32'][b]:.3f} ms, int8 "
                f"{speed['int8'][b]:.3f} ms (x{speed['fp32'][b] / speed['int8'][b]:.2f})"
                for b in speed["fp32"]
            ),
        ]
    )
    return Candidate(
        contract=contract,
        fp32=fp32,
        int8=int8,
        int8_ok=accepted,
        metrics=metrics,
        params=params,
        example_inputs=tuple(np.asarray(a, np.float32) for a in example_inputs),
        fingerprint=fingerprint,
        table=table,
        plots=plots,
        report=report,
    )
