"""Train a model and turn it into a registrable candidate (export, parity, quantization).

candidate = build_candidate("demand", data=Path("../shared/data/jeju/train.csv"),
                            out_dir=Path("var/train/demand"))
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import pandas as pd

from pamtalk.models import contract
from pamtalk.models.demand.data import load_csv
from pamtalk.models.demand.synthetic import synthetic
from pamtalk.training import candidate
from pamtalk.training.candidate import Candidate
from pamtalk.training.demand import DemandConfig, train_demand
from pamtalk.training.esg import EsgConfig, train_esg
from pamtalk.training.result import TrainResult

Kind = Literal["demand", "esg"]
JEJU = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "jeju" / "train.csv"


def _train_demand(
    out_dir: Path, data: Path | pd.DataFrame | None, epochs: int | None, tiny: bool
) -> TrainResult:
    config = DemandConfig.tiny() if tiny else DemandConfig()
    if epochs is not None:
        config = replace(config, fit=replace(config.fit, epochs=epochs))
    if isinstance(data, pd.DataFrame):
        frame = data
    elif data is not None:
        frame = load_csv(data)
    elif tiny:
        frame = synthetic(n_series=12, days=500, seed=config.fit.seed)
    else:
        frame = synthetic(seed=config.fit.seed)
    return train_demand(frame, config, out_dir)


def _train_esg(out_dir: Path, epochs: int | None, tiny: bool) -> TrainResult:
    config = EsgConfig.tiny() if tiny else EsgConfig()
    if epochs is not None:
        config = replace(config, fit=replace(config.fit, epochs=epochs))
    return train_esg(config, out_dir)


def build_candidate(
    kind: Kind,
    *,
    out_dir: Path,
    data: Path | pd.DataFrame | None = None,
    epochs: int | None = None,
    tiny: bool = False,
) -> Candidate:
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "demand":
        result, spec = _train_demand(out_dir, data, epochs, tiny), contract.DEMAND
    else:
        result, spec = _train_esg(out_dir, epochs, tiny), contract.ESG
    return candidate.build(
        result.model,
        spec,
        example_inputs=result.example_inputs,
        eval_inputs=result.eval_inputs,
        evaluate=result.evaluate,
        metrics=result.metrics,
        params=result.params,
        fingerprint=result.fingerprint,
        table=result.table,
        plots=result.plots,
        out_dir=out_dir,
    )
