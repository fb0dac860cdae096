"""Export a trained network to ONNX under its contract, and check it: onnx.checker, the
contract's names/shapes/dtypes, and ONNX Runtime against PyTorch on the same inputs. The
torch-free half (session, predictor, contract check) is ``pamtalk.models.onnx_graph``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from pamtalk.models.contract import ModelContract
from pamtalk.models.onnx_graph import contract_violations, predictor, session

__all__ = ["OPSET", "contract_violations", "export", "parity", "predictor", "session"]

OPSET = 17


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
