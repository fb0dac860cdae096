"""Train and evaluate the demand model from the command line, through training/pipeline.py
(as `pamtalk train demand` does, without the export and the registry).

Runbook:

    # the Jeju data (../shared/data/jeju/train.csv, the default where present): under 2 min
    # on 2 CPU cores
    .venv/bin/python -m pamtalk.training.demand --out /tmp/demand-run
    .venv/bin/python -m pamtalk.training.demand --data prices.csv  # any CSV of the Jeju shape
    .venv/bin/python -m pamtalk.training.demand --synthetic --out /tmp/demand-synthetic
    .venv/bin/python -m pamtalk.training.demand --tiny --epochs 1  # seconds, for a smoke test
"""

from pamtalk.training.pipeline import main

if __name__ == "__main__":
    main("demand")
