"""Validation gates a version must pass before it becomes ``champion``. Each gate returns a
failure reason or None; the first failure refuses the promotion and is named."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pamtalk.models import onnx_graph
from pamtalk.models.contract import ModelContract
from pamtalk.training import quantize


@dataclass(frozen=True)
class GatePolicy:
    metric_tolerance: float = 0.02  # relative: the candidate may be at most 2 % worse
    # relative: how much worse than the best peer of its own run (contract.peers) it may be;
    # the champion's 2 %, since one seed's hold-out MASE moves about that much (the demand
    # ensemble's ratio: 0.787 / 0.801 / 0.787 for seeds 0 / 1 / 2, docs/models.md)
    peer_tolerance: float = 0.02
    latency_budget_ms: tuple[tuple[int, float], ...] = ((1, 20.0), (64, 200.0))


@dataclass(frozen=True)
class Review:
    """What the gates look at: the version's ONNX file, its run's metrics and the current
    champion's (None when there is none yet)."""

    contract: ModelContract
    onnx_path: Path
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    # Fingerprints of the data each was trained and evaluated on (the runs' tags).
    fingerprint: str | None = None
    champion_fingerprint: str | None = None


def incomparable(c: Review) -> str | None:
    """Why the version's metrics cannot be set against the champion's, or None. Metrics of
    different evaluation data are different quantities: a MASE on the Jeju hold-out and one
    on the platform's aggregate say nothing about each other."""
    if c.champion_metrics is None or not (c.fingerprint and c.champion_fingerprint):
        return None
    if c.fingerprint == c.champion_fingerprint:
        return None
    return (
        "not compared: the version was evaluated on other data than the champion "
        f"(data {c.fingerprint[:12]} vs {c.champion_fingerprint[:12]}); judge it on live "
        "traffic with a canary or a rollout"
    )


Gate = Callable[[Review, GatePolicy], str | None]


def loads(c: Review, _: GatePolicy) -> str | None:
    try:
        onnx_graph.session(c.onnx_path)
    except Exception as exc:  # any load failure refuses the model
        return f"ONNX Runtime cannot load the model: {exc}"
    return None


def contract(c: Review, _: GatePolicy) -> str | None:
    problems = onnx_graph.contract_violations(c.onnx_path, c.contract)
    return "; ".join(problems) if problems else None


def probe_inputs(contract: ModelContract, batch: int = 16, seed: int = 0) -> list[list[np.ndarray]]:
    """Zeros, typical and extreme values, for every input of the contract."""
    rng = np.random.default_rng(seed)

    def shaped(fill: Callable[[tuple[int, ...]], np.ndarray]) -> list[np.ndarray]:
        return [
            fill((batch, *(d or 1 for d in spec.shape[1:]))).astype(np.float32)
            for spec in contract.inputs
        ]

    return [
        shaped(np.zeros),
        shaped(rng.random),
        shaped(lambda s: rng.random(s) * 1e5),
        shaped(np.ones),
    ]


def finite(c: Review, _: GatePolicy) -> str | None:
    predict = onnx_graph.predictor(onnx_graph.session(c.onnx_path), c.contract)
    for inputs in probe_inputs(c.contract):
        output = predict(*inputs)
        if not np.all(np.isfinite(output)):
            return "NaN or inf in the outputs for probe inputs"
    return None


def _worse(new: float, old: float, goal: str) -> float:
    """How much worse ``new`` is than ``old``, relative to ``old`` (negative: better)."""
    return (new - old if goal == "min" else old - new) / max(abs(old), 1e-12)


def best_peer(c: Review) -> tuple[str, float] | None:
    """The peer (contract.peers) with the best main metric in the version's own run, or
    None when the run scored none (peers skipped: their metrics are absent or NaN)."""
    name, sign = c.contract.main_metric, (1.0 if c.contract.metric_goal == "min" else -1.0)
    scored = [
        (peer, c.metrics[f"{peer}_{name}"])
        for peer in c.contract.peers
        if math.isfinite(c.metrics.get(f"{peer}_{name}", math.nan))
    ]
    return min(scored, key=lambda p: sign * p[1]) if scored else None


def metric(c: Review, policy: GatePolicy) -> str | None:
    name = c.contract.main_metric
    if name not in c.metrics:
        return f"the run has no {name} metric"
    # Peers fitted in the same run, on the same windows: no other data, no excuse.
    peer = best_peer(c)
    if peer is not None:
        worse = _worse(c.metrics[name], peer[1], c.contract.metric_goal)
        if not worse <= policy.peer_tolerance:
            return (
                f"{name} {c.metrics[name]:.4f} is {worse:.1%} worse than the best peer of its "
                f"own run, {peer[0]} ({peer[1]:.4f}, same windows; tolerance "
                f"{policy.peer_tolerance:.0%})"
            )
    if c.champion_metrics is None or name not in c.champion_metrics:
        return None  # nothing to compare with: the first champion
    if incomparable(c) is not None:
        return None  # the gate cannot judge it; gate_results says so
    new, old = c.metrics[name], c.champion_metrics[name]
    worse = _worse(new, old, c.contract.metric_goal)
    if worse > policy.metric_tolerance:
        return (
            f"{name} {new:.4f} is {worse:.1%} worse than the champion's {old:.4f} "
            f"(tolerance {policy.metric_tolerance:.0%})"
        )
    return None


def latency(c: Review, policy: GatePolicy) -> str | None:
    budgets = dict(policy.latency_budget_ms)
    example = probe_inputs(c.contract, batch=1)[1]
    measured = quantize.latencies(
        {"model": c.onnx_path},
        c.contract,
        lambda b: quantize.tile_batch(example, b),
        batch_sizes=tuple(budgets),
        repeats=30,
    )["model"]
    over = [
        f"batch {b}: {measured[b]:.1f} ms > {budgets[b]:.0f} ms"
        for b in budgets
        if measured[b] > budgets[b]
    ]
    return "latency over budget: " + ", ".join(over) if over else None


GATES: tuple[tuple[str, Gate], ...] = (
    ("loads", loads),
    ("contract", contract),
    ("finite", finite),
    ("metric", metric),
    ("latency", latency),
)


def first_failure(c: Review, policy: GatePolicy) -> tuple[str, str] | None:
    for name, gate in GATES:
        if (reason := gate(c, policy)) is not None:
            return name, reason
    return None
