"""A model's ONNX file without PyTorch: an ONNX Runtime session, a plain predictor over it,
and what in the graph differs from the model's contract. The promotion gates and serving use
these; exporting from PyTorch (``pamtalk.training.onnx_export``, the ``train`` extra) does too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from pamtalk.models.contract import ModelContract

# predict(*inputs) -> the model's output, e.g. an ONNX Runtime session wrapped as a function.
Predictor = Callable[..., np.ndarray]

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}


def contract_violations(path: Path, contract: ModelContract) -> list[str]:
    """What differs from the contract, in the graph's declarations and in what it actually
    returns for a batch of 3; empty when it matches."""
    graph = onnx.load(str(path)).graph
    problems: list[str] = []
    for kind, specs, values in (
        ("input", contract.inputs, graph.input),
        ("output", contract.outputs, graph.output),
    ):
        if [v.name for v in values] != [s.name for s in specs]:
            problems.append(f"{kind} names {[v.name for v in values]} != {[s.name for s in specs]}")
            continue
        for spec, value in zip(specs, values, strict=True):
            tensor = value.type.tensor_type
            dtype = _ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type))
            if dtype != spec.dtype:
                problems.append(f"{kind} {spec.name} dtype {dtype} != {spec.dtype}")
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            if dims != spec.shape:
                problems.append(f"{kind} {spec.name} shape {dims} != {spec.shape}")
    if problems:
        return problems
    inputs = [
        np.zeros((3, *(d or 1 for d in spec.shape[1:])), np.float32) for spec in contract.inputs
    ]
    outputs = session(path).run(
        None, dict(zip([s.name for s in contract.inputs], inputs, strict=True))
    )
    for spec, output in zip(contract.outputs, outputs, strict=True):
        expected = (3, *(d or 1 for d in spec.shape[1:]))
        if tuple(output.shape) != expected:
            problems.append(
                f"output {spec.name} returns shape {tuple(output.shape)} for a "
                f"batch of 3, not {expected}"
            )
    return problems


def session(
    path: Path, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=list(providers))


def predictor(sess: ort.InferenceSession, contract: ModelContract) -> Predictor:
    """A plain ``predict(*inputs) -> first output`` over an ONNX Runtime session."""
    names = [spec.name for spec in contract.inputs]

    def predict(*inputs: np.ndarray) -> np.ndarray:
        feeds = {n: np.asarray(a, dtype=np.float32) for n, a in zip(names, inputs, strict=True)}
        result: np.ndarray = sess.run(None, feeds)[0]
        return result

    return predict
