"""Export, parity and quantization of a real (tiny) trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pamtalk.models.contract import DEMAND, ESG
from pamtalk.training import onnx_export
from pamtalk.training.candidate import FP32_ATOL, INT8_MAX_WORSE
from pamtalk.training.pipeline import build_candidate


def test_esg_candidate_parity_quantization_and_latency(tmp_path: Path) -> None:
    candidate = build_candidate("esg", out_dir=tmp_path, tiny=True)
    assert candidate.contract is ESG
    assert onnx_export.contract_violations(candidate.fp32, ESG) == []
    metrics = candidate.metrics
    assert metrics["onnx_fp32_max_abs_diff"] <= FP32_ATOL  # scores are 0..100: plain 1e-4
    # int8 is served exactly when its metric change is within the limit
    assert candidate.int8 is not None and candidate.int8.exists()  # logged either way
    assert candidate.int8_ok == (metrics["int8_relative_worse"] <= INT8_MAX_WORSE)
    assert np.isfinite(metrics["int8_mae_complete"])
    for batch in (1, 64):
        assert metrics[f"latency_ms_fp32_b{batch}"] > 0
        assert metrics[f"latency_ms_int8_b{batch}"] > 0
        assert f"batch {batch}" in candidate.report


def test_demand_candidate_on_generated_data(tmp_path: Path) -> None:
    candidate = build_candidate("demand", out_dir=tmp_path, tiny=True)
    assert onnx_export.contract_violations(candidate.fp32, DEMAND) == []
    assert candidate.metrics["onnx_fp32_max_abs_diff"] < 1.0  # kg
    assert "seasonal_naive" in candidate.table
    predict = onnx_export.predictor(onnx_export.session(candidate.fp32), DEMAND)
    quantiles = predict(*candidate.example_inputs)
    assert quantiles.shape == (len(candidate.example_inputs[0]), 28, 3)
    assert np.all(np.diff(quantiles, axis=2) >= 0) and np.all(quantiles >= 0)
