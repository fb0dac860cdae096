from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from pamtalk.models.contract import DEMAND, DEMAND_CALENDAR_FEATURES
from pamtalk.models.demand.network import DemandNet, parameter_count, widen


def inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    demand = torch.rand(batch, 56, generator=g) * 10_000
    demand[:, 6::7] = 0  # Sundays
    demand[0] = 0  # a series without any history
    price = torch.where(demand > 0, 500 + torch.rand(batch, 56, generator=g) * 3_000, 0.0)
    calendar = torch.rand(batch, 84, DEMAND_CALENDAR_FEATURES, generator=g)
    return torch.stack([demand, price], dim=2), calendar


def test_outputs_non_negative_monotone_and_shaped() -> None:
    torch.manual_seed(0)
    model = DemandNet(members=2).eval()
    # Random weights give wild raw outputs: exactly the case the constraints must survive.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        q = model(*inputs(16))
    assert q.shape == (16, 28, 3)
    assert (q >= 0).all()
    assert (q[:, :, 0] <= q[:, :, 1]).all() and (q[:, :, 1] <= q[:, :, 2]).all()
    assert 10_000 < parameter_count(DemandNet()) < 100_000


def test_scaling_is_inside_the_graph() -> None:
    """Raw kg in, kg out: a window without demand forecasts ~0, and demand x1000 moves the
    forecast by orders of magnitude without any caller-side scaling."""
    torch.manual_seed(0)
    model = DemandNet().eval()
    history, calendar = inputs(3)
    with torch.no_grad():
        q = model(history, calendar)
        assert float(q[0].max()) < 1.0  # row 0 has no history: nothing to go on
        big = history.clone()
        big[:, :, 0] *= 1000
        ratio = model(big, calendar)[1:, :, 1].mean() / q[1:, :, 1].mean()
    assert 100 < float(ratio) < 10_000


def test_exports_to_onnx_with_a_dynamic_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DemandNet(members=3).eval()
    path = tmp_path / "demand.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            inputs(2),
            str(path),
            input_names=[s.name for s in DEMAND.inputs],
            output_names=[s.name for s in DEMAND.outputs],
            dynamic_axes={n: {0: "batch"} for n in ("history", "calendar", "quantiles")},
            opset_version=17,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        history, calendar = inputs(batch, seed=batch)
        (got,) = session.run(None, {"history": history.numpy(), "calendar": calendar.numpy()})
        with torch.no_grad():
            want = model(history, calendar).numpy()
        assert got.shape == (batch, 28, 3)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_the_band_factor_widens_about_p50_and_is_exported(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DemandNet(members=2).eval()
    history, calendar = inputs(5)
    with torch.no_grad():
        before = model(history, calendar).numpy()
        model.band_factor.fill_(1.7)
        after = model(history, calendar).numpy()
        q, scale = model.scaled(history, calendar)
    np.testing.assert_allclose(after[:, :, 1], before[:, :, 1], rtol=1e-6)
    widened = widen(q, torch.tensor(1.7)) * scale
    np.testing.assert_allclose(after, torch.relu(widened).numpy(), rtol=1e-5, atol=1e-3)
    assert (np.diff(after, axis=2) >= 0).all()
    # the factor travels in the graph: ONNX Runtime gives the widened band
    path = tmp_path / "demand.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (history, calendar),
            str(path),
            input_names=[s.name for s in DEMAND.inputs],
            output_names=[s.name for s in DEMAND.outputs],
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"history": history.numpy(), "calendar": calendar.numpy()})
    np.testing.assert_allclose(got, after, rtol=1e-4, atol=1e-3)
    assert "band_factor" in model.state_dict()
