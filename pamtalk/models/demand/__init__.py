"""Daily produce demand per crop x region: data sources (data.py, synthetic.py), holidays,
features, the network, baselines, evaluation and plots. Training: ``pamtalk.training.demand``.
The network (PyTorch, the ``train`` extra) is imported from ``network`` only where trained,
so that serving imports this package without torch.
"""

from pamtalk.models.demand.data import COLUMNS, from_daily_aggregate, load_csv, load_jeju
from pamtalk.models.demand.features import CALENDAR_COLUMNS, build_inputs, calendar_features

__all__ = [
    "CALENDAR_COLUMNS",
    "COLUMNS",
    "build_inputs",
    "calendar_features",
    "from_daily_aggregate",
    "load_csv",
    "load_jeju",
]
