"""Demand training: fit the forecaster and evaluate it against the baselines (train.py).

    result = train_demand(load_jeju(), DemandConfig(), Path("/tmp/demand-run"))
    print(result.table); result.model  # eval mode: forward(history, calendar) -> quantiles

Run it as ``python -m pamtalk.training.demand`` (__main__.py, through training/pipeline.py).
"""

from pamtalk.training.demand.train import DemandConfig, train_demand

__all__ = ["DemandConfig", "train_demand"]
