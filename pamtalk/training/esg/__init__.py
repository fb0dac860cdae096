"""ESG training: fit the network to the methodology and evaluate it (train.py).

    result = train_esg(EsgConfig(), Path("/tmp/esg-run"))
    print(result.table); result.model  # eval mode: forward(practices, mask) -> scores

Run it as ``python -m pamtalk.training.esg`` (__main__.py, through training/pipeline.py).
"""

from pamtalk.training.esg.train import EsgConfig, train_esg

__all__ = ["EsgConfig", "train_esg"]
