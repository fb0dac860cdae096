"""Train and evaluate the ESG model from the command line, through training/pipeline.py
(as `pamtalk train esg` does, without the export and the registry).

Runbook:

    .venv/bin/python -m pamtalk.training.esg --out /tmp/esg-run     # default config
    .venv/bin/python -m pamtalk.training.esg --tiny --out /tmp/esg-tiny
"""

from pamtalk.training.pipeline import main

if __name__ == "__main__":
    main("esg")
