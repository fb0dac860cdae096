"""Export a trained network to ONNX under its contract, and check it: onnx.checker, the
contract's names/shapes/dtypes, and ONNX Runtime against PyTorch on the same inputs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from pamtalk.models.contract import ModelContract
from pamtalk.training.result import Predictor

OPSET = 17
_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}


def export(
    model: nn.Module, example: Sequence[np.ndarray], contract: ModelContract, path: Path
) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis on every input and output, the
    outputs' shapes declared as the contract says (tracing leaves reshaped dims unnamed)."""
    model.eval()
    names_in = [spec.name for spec in contract.inputs]
    names_out = [spec.name for spec in contract.outputs]
    batch_axis = {name: {0: "batch"} for name in names_in + names_out}
    tensors = tuple(torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in example)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (dynamo), which is
        # ~30x slower here and no better for these small static graphs.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            tensors,
            str(path),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=batch_axis,
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    for value, spec in zip(graph.graph.output, contract.outputs, strict=True):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in spec.shape:
            dim = dims.add()
            if size is None:
                dim.dim_param = "batch"
            else:
                dim.dim_value = size
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return path


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


@torch.no_grad()
def parity(
    model: nn.Module,
    path: Path,
    contract: ModelContract,
    inputs: Sequence[np.ndarray],
    atol: float = 0.0,
) -> tuple[float, float]:
    """Largest |ONNX Runtime - PyTorch| over the inputs, and the largest excess over ``atol``
    relative to the largest |output| of its example. Relative to the example, not the
    element: a network computes an example's outputs at one scale (demand: the series' level,
    up to ~1e6 kg), so a near-zero quantile carries that scale's float32 rounding too."""
    model.eval()
    expected = model(*(torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in inputs))
    expected = expected.numpy()
    diff = np.abs(predictor(session(path), contract)(*inputs) - expected)
    scale = np.abs(expected).reshape(len(expected), -1).max(axis=1)
    scale = scale.reshape(-1, *([1] * (expected.ndim - 1)))
    relative = np.maximum(diff - atol, 0.0) / np.maximum(scale, np.finfo(np.float32).tiny)
    return float(diff.max()), float(relative.max())
