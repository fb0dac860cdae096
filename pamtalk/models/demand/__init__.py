"""Daily produce demand per crop x region: data sources (data.py, synthetic.py), holidays,
features, the network, baselines, evaluation and plots. Training: ``pamtalk.training.demand``.
"""

from pamtalk.models.demand.data import COLUMNS, from_daily_aggregate, load_csv, load_jeju
from pamtalk.models.demand.features import CALENDAR_COLUMNS, build_inputs, calendar_features
from pamtalk.models.demand.network import DemandNet

__all__ = [
    "CALENDAR_COLUMNS",
    "COLUMNS",
    "DemandNet",
    "build_inputs",
    "calendar_features",
    "from_daily_aggregate",
    "load_csv",
    "load_jeju",
]
