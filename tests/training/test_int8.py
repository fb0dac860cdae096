"""Static int8: a row's answer is bit for bit the same alone and inside any batch, through the
runtime that serves it; the dynamic int8 it replaced is not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from pamtalk.serving.runtime import Artifact, OnnxModel
from pamtalk.training.candidate import Candidate
from pamtalk.training.pipeline import export, train

SIZES = (1, 2, 7, 64, 300)


@dataclass
class Built:
    candidate: Candidate
    held_out: list[np.ndarray]  # realistic rows to batch together


@pytest.fixture(scope="module", params=["demand", "esg"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A tiny trained model through the export pipeline (as build_candidate runs it), with
    its held-out inputs."""
    out = tmp_path_factory.mktemp(request.param)
    result = train(request.param, out_dir=out, tiny=True)
    candidate = export(request.param, result, out)
    return Built(candidate, [np.asarray(a, np.float32) for a in result.eval_inputs])


def runtime(candidate: Candidate, path: Path, precision: str) -> OnnxModel:
    name = candidate.contract.registered_name
    model = OnnxModel(Artifact(name, "1", path, precision), candidate.contract, "cpu", threads=1)
    model.load()
    return model


def rows_in_batches(model: OnnxModel, inputs: list[np.ndarray], rows: np.ndarray) -> int:
    """How many (row, batch) pairs give a row another answer than it gets alone: each row
    scored alone, then inside batches of every size in SIZES, among other batch-mates each
    time (the held-out rows drawn at random around it)."""
    rng = np.random.default_rng(7)
    total = len(inputs[0])
    differ = 0
    for row in rows:
        alone = model.predict([a[row : row + 1] for a in inputs])[0][0]
        for size in SIZES[1:]:
            others = np.delete(np.arange(total), row)
            mates = rng.choice(others, size - 1, replace=size > len(others))
            at = int(rng.integers(size))
            order = np.insert(mates, at, row)
            batched = model.predict([a[order] for a in inputs])[0][at]
            differ += int(not np.array_equal(batched, alone))
    return differ


def test_static_int8_is_calibrated_qdq(built: Built) -> None:
    candidate = built.candidate
    assert candidate.int8 is not None
    ops = {node.op_type for node in onnx.load(str(candidate.int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # fixed scales in the graph
    assert "DynamicQuantizeLinear" not in ops  # nothing computed from the batch
    assert candidate.metrics[f"int8_{candidate.contract.main_metric}"] > 0


def test_a_rows_static_int8_answer_does_not_depend_on_its_batch(built: Built) -> None:
    candidate = built.candidate
    assert candidate.int8 is not None
    model = runtime(candidate, candidate.int8, "int8")
    rows = np.random.default_rng(3).choice(len(built.held_out[0]), 12, replace=False)
    assert rows_in_batches(model, built.held_out, rows) == 0


def test_dynamic_int8_answers_depend_on_the_batch(built: Built, tmp_path: Path) -> None:
    """What static int8 fixes: dynamic quantization's activation scales come from the batch
    (the quantization pamtalk train used before)."""
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(built.candidate.fp32), str(dynamic), weight_type=QuantType.QInt8)
    model = runtime(built.candidate, dynamic, "int8")
    rows = np.random.default_rng(3).choice(len(built.held_out[0]), 12, replace=False)
    assert rows_in_batches(model, built.held_out, rows) > 0
