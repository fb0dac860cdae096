from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pamtalk.errors import Conflict, NotFound
from pamtalk.models.contract import DEMAND, ESG, TensorSpec
from pamtalk.registry import promote
from pamtalk.registry.gates import (
    GatePolicy,
    Review,
    best_peer,
    first_failure,
    incomparable,
    metric,
)
from tests.registry.conftest import Register, TinyEsg

NAME = "pamtalk-esg"


def champion(client: MlflowClient) -> str | None:
    mv = promote.by_alias(client, NAME, promote.CHAMPION)
    return str(mv.version) if mv else None


def test_promote_then_rollback(client: MlflowClient, register: Register) -> None:
    first = register(mae=1.5)
    promote.promote(client, NAME, first)
    assert champion(client) == first
    resolved = promote.resolve(client, NAME)
    assert resolved is not None and resolved.fp32.exists() and resolved.version == first

    second = register(mae=1.4)
    promote.promote(client, NAME, second)
    assert champion(client) == second
    rows = promote.list_versions(client, NAME)
    assert [(r.version, r.aliases) for r in rows] == [(first, ()), (second, ("champion",))]

    assert promote.rollback(client, NAME) == first
    assert champion(client) == first
    with pytest.raises(Conflict, match="no previous champion"):
        promote.rollback(client, NAME)


def test_metric_gate_refuses_a_worse_model(client: MlflowClient, register: Register) -> None:
    promote.promote(client, NAME, register(mae=1.0))
    within = register(mae=1.015)  # 1.5 % worse: inside the 2 % tolerance
    promote.promote(client, NAME, within)
    worse = register(mae=1.2)
    with pytest.raises(promote.PromotionRefused) as refused:
        promote.promote(client, NAME, worse)
    assert refused.value.gate == "metric"
    assert "worse than the champion" in refused.value.message
    assert champion(client) == within


def test_finite_gate_refuses_nan_outputs(client: MlflowClient, register: Register) -> None:
    broken = register(mae=0.5, model=TinyEsg(broken=True))
    with pytest.raises(promote.PromotionRefused) as refused:
        promote.promote(client, NAME, broken)
    assert refused.value.gate == "finite"
    assert champion(client) is None


def test_contract_gate_refuses_wrong_shapes(client: MlflowClient, register: Register) -> None:
    # exported (carelessly) to a contract with a flat output
    flat_contract = replace(ESG, outputs=(TensorSpec("scores", (None, 4)),))
    flat = register(mae=0.5, model=TinyEsg(flat=True), contract=flat_contract)
    with pytest.raises(promote.PromotionRefused) as refused:
        promote.promote(client, NAME, flat)
    assert refused.value.gate == "contract"
    assert "shape" in refused.value.message


def test_latency_gate_refuses_a_slow_model(client: MlflowClient, register: Register) -> None:
    version = register(mae=0.5)
    with pytest.raises(promote.PromotionRefused) as refused:
        promote.promote(
            client, NAME, version, GatePolicy(latency_budget_ms=((1, 1e-6), (64, 1e-6)))
        )
    assert refused.value.gate == "latency"


def test_unknown_model_and_version(client: MlflowClient, register: Register) -> None:
    register(mae=1.0)
    with pytest.raises(NotFound):
        promote.promote(client, "pamtalk-nothing", "1")
    with pytest.raises(NotFound):
        promote.promote(client, NAME, "99")


def test_loads_gate_refuses_a_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"not an onnx graph")
    review = Review(
        contract=ESG, onnx_path=corrupt, metrics={"mae_complete": 0.1}, champion_metrics=None
    )
    failure = first_failure(review, GatePolicy())
    assert failure is not None and failure[0] == "loads"
    assert "cannot load" in failure[1]


def test_metrics_of_other_evaluation_data_are_not_compared() -> None:
    """A MASE on the Jeju hold-out against one on the platform's data is no comparison: the
    metric gate does not refuse on it, and says why it cannot judge."""
    review = Review(
        contract=ESG,
        onnx_path=Path("unused.onnx"),
        metrics={"mae_complete": 0.3},
        champion_metrics={"mae_complete": 0.1},  # three times better, on other data
        fingerprint="a" * 64,
        champion_fingerprint="b" * 64,
    )
    assert metric(review, GatePolicy()) is None
    assert "evaluated on other data" in (incomparable(review) or "")
    same = dataclasses.replace(review, champion_fingerprint="a" * 64)
    assert incomparable(same) is None
    assert "worse than the champion" in (metric(same, GatePolicy()) or "")


def demand_review(mase: float, **peers: float) -> Review:
    return Review(
        contract=DEMAND,
        onnx_path=Path("unused.onnx"),
        metrics={"mase": mase, **{f"{peer}_mase": value for peer, value in peers.items()}},
        champion_metrics=None,
    )


def test_metric_gate_refuses_a_model_worse_than_its_runs_best_peer() -> None:
    """Peers fitted in the same run on the same windows: the best one (lowest MASE) sets the
    bar, even for the first champion."""
    worse = demand_review(1.40, autoets=1.70, autotheta=1.73, lightgbm=1.35)
    reason = metric(worse, GatePolicy()) or ""
    assert "worse than the best peer of its own run, lightgbm (1.3500" in reason
    assert "3.7%" in reason
    assert metric(worse, GatePolicy(peer_tolerance=0.05)) is None
    assert best_peer(worse) == ("lightgbm", 1.35)

    better = demand_review(1.34, autoets=1.70, autotheta=1.73, lightgbm=1.35)
    assert metric(better, GatePolicy()) is None
    within = demand_review(1.36, lightgbm=1.35)  # 0.7 % worse: inside the 2 % tolerance
    assert metric(within, GatePolicy()) is None
    assert "worse than the best peer" in (metric(within, GatePolicy(peer_tolerance=0.0)) or "")


def test_metric_gate_without_peer_scores_judges_as_before() -> None:
    """A run whose peers were skipped (no 'forecast' extra: NaN) or that predates them."""
    skipped = demand_review(1.9, autoets=math.nan, autotheta=math.nan, lightgbm=math.nan)
    assert best_peer(skipped) is None and metric(skipped, GatePolicy()) is None
    assert metric(demand_review(1.9), GatePolicy()) is None
    # One peer scored, the others not: that one is the bar.
    one = demand_review(1.9, autoets=1.8, autotheta=math.nan)
    assert "autoets (1.8000" in (metric(one, GatePolicy()) or "")
