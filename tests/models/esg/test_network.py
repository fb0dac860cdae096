"""The network's promises: range, quantile order, consistent overall, ONNX opset 17."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pamtalk.models import contract
from pamtalk.models.esg.network import EsgNet

F = contract.ESG_FEATURES


def random_net(seed: int, scale: float) -> EsgNet:
    torch.manual_seed(seed)
    net = EsgNet(hidden=16, layers=2).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)  # large weights push the sigmoids to their ends
    return net


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_scores_in_range_and_ordered(scale: float) -> None:
    net = random_net(0, scale)
    practices = torch.rand(256, F) * 2
    mask = (torch.rand(256, F) > 0.3).float()
    with torch.no_grad():
        scores = net(practices, mask)
    assert scores.shape == (256, 4, 3)
    assert scores.min() >= 0 and scores.max() <= 100
    assert (scores[..., 0] <= scores[..., 1]).all() and (scores[..., 1] <= scores[..., 2]).all()
    overall = 0.40 * scores[:, 0, 1] + 0.35 * scores[:, 1, 1] + 0.25 * scores[:, 2, 1]
    torch.testing.assert_close(scores[:, 3, 1], overall)


def test_masked_values_are_ignored() -> None:
    net = random_net(1, 1.0)
    mask = (torch.rand(8, F) > 0.5).float()
    a, b = torch.rand(8, F), torch.rand(8, F)
    with torch.no_grad():
        torch.testing.assert_close(net(a * mask, mask), net(torch.where(mask > 0, a, b), mask))


def test_exports_to_onnx_opset_17_with_a_dynamic_batch(tmp_path: Path) -> None:
    net = random_net(2, 1.0)
    example = (torch.rand(4, F), torch.ones(4, F))
    path = tmp_path / "esg.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) announces its own deprecation.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            net,
            example,
            str(path),
            input_names=["practices", "mask"],
            output_names=["scores"],
            dynamic_axes={n: {0: "batch"} for n in ("practices", "mask", "scores")},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 37):
        practices = np.random.default_rng(n).random((n, F), dtype=np.float32)
        mask = np.ones((n, F), dtype=np.float32)
        (got,) = session.run(None, {"practices": practices, "mask": mask})
        with torch.no_grad():
            expected = net(torch.from_numpy(practices), torch.from_numpy(mask)).numpy()
        assert got.shape == (n, 4, 3)
        np.testing.assert_allclose(got, expected, atol=1e-4)
