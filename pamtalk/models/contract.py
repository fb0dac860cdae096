"""The serving contract of each model: tensor names, shapes and dtypes of its ONNX graph.

Training exports to it, the promotion gates check it, serving and batch scoring feed it.
``None`` in a shape is the dynamic batch axis. A model is known by its kind (``demand``,
``esg``: the CLI's and the batch jobs' word) and by its registered name (MLflow's):

    contract = by_kind("demand")            # CONTRACTS["pamtalk-demand"] is the same object
    contract.kind, contract.registered_name  # "demand", "pamtalk-demand"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["demand", "esg"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelContract:
    kind: Kind
    registered_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    main_metric: str
    # "min": lower is better (errors), "max": higher is better.
    metric_goal: Literal["min", "max"] = "min"
    # Other methods the training run fits and scores on the same data; the run's metrics
    # carry each one's main metric as "<peer>_<main_metric>" (the metric gate reads them).
    peers: tuple[str, ...] = ()


# Demand: 56 days of history (demand in kg, price in KRW/kg; 0 where unknown) and calendar
# features for those days plus the 28 to forecast -> p10/p50/p90 per future day, in kg.
DEMAND_LOOKBACK = 56
DEMAND_HORIZON = 28
DEMAND_CALENDAR_FEATURES = 13
DEMAND_QUANTILES = (0.1, 0.5, 0.9)

DEMAND = ModelContract(
    kind="demand",
    registered_name="pamtalk-demand",
    inputs=(
        TensorSpec("history", (None, DEMAND_LOOKBACK, 2)),
        TensorSpec("calendar", (None, DEMAND_LOOKBACK + DEMAND_HORIZON, DEMAND_CALENDAR_FEATURES)),
    ),
    outputs=(TensorSpec("quantiles", (None, DEMAND_HORIZON, len(DEMAND_QUANTILES))),),
    main_metric="mase",
    peers=("autoets", "autotheta", "lightgbm"),  # models/demand/peers.py
)

# ESG: a practice vector with a mask (1 = reported, 0 = missing; missing values are 0)
# -> p10/p50/p90 of the E, S, G and overall scores (0-100).
ESG_FEATURES = 34
ESG_SCORES = ("environmental", "social", "governance", "overall")
ESG_QUANTILES = (0.1, 0.5, 0.9)

ESG = ModelContract(
    kind="esg",
    registered_name="pamtalk-esg",
    inputs=(
        TensorSpec("practices", (None, ESG_FEATURES)),
        TensorSpec("mask", (None, ESG_FEATURES)),
    ),
    outputs=(TensorSpec("scores", (None, len(ESG_SCORES), len(ESG_QUANTILES))),),
    main_metric="mae_complete",
)

CONTRACTS = {c.registered_name: c for c in (DEMAND, ESG)}
KINDS: dict[str, ModelContract] = {c.kind: c for c in (DEMAND, ESG)}


def by_kind(kind: str) -> ModelContract:
    """The contract of ``kind``; ValueError (naming the kinds) for any other word."""
    if (contract := KINDS.get(kind)) is None:
        raise ValueError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")
    return contract
