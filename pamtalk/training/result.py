"""What a model's training returns: the trained network, its evaluation, and what the
export pipeline needs (example and held-out inputs, and a way to re-evaluate any predictor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pamtalk.models.onnx_graph import Predictor

# evaluate(predictor) -> held-out metrics, the same as training reports for its own model.
Evaluate = Callable[[Predictor], dict[str, float]]


@dataclass
class TrainResult:
    model: nn.Module  # eval mode; forward(*inputs) follows the model's contract
    metrics: dict[str, float]
    table: str  # printable evaluation table
    example_inputs: tuple[np.ndarray, np.ndarray]  # a small float32 batch
    eval_inputs: tuple[np.ndarray, np.ndarray]  # the held-out inputs
    # a sample of the training inputs (quantize.calibration_rows): int8 calibration
    calibration_inputs: tuple[np.ndarray, np.ndarray]
    evaluate: Evaluate  # held-out metrics of any predictor
    plots: dict[str, Path] = field(default_factory=dict)
    fingerprint: str = ""  # sha256 of the training data
    params: dict[str, Any] = field(default_factory=dict)


def torch_predictor(model: nn.Module) -> Predictor:
    """A trained network as a Predictor: float32 arrays in, its output as an array, in eval
    mode and without gradients."""

    @torch.no_grad()
    def predict(*inputs: np.ndarray) -> np.ndarray:
        model.eval()
        tensors = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in inputs)
        return np.asarray(model(*tensors).numpy())

    return predict
