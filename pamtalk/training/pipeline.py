"""Train a model and turn it into a registrable candidate (export, parity, quantization).

candidate = build_candidate("demand", data=Path("../shared/data/jeju/train.csv"),
                            out_dir=Path("var/train/demand"))
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from pamtalk.models import contract
from pamtalk.training import candidate
from pamtalk.training.candidate import Candidate

Kind = Literal["demand", "esg"]
JEJU = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "jeju" / "train.csv"


def build_candidate(
    kind: Kind,
    *,
    out_dir: Path,
    data: Path | None = None,
    epochs: int | None = None,
    tiny: bool = False,
) -> Candidate:
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "demand":
        from pamtalk.models.demand import data as demand_data
        from pamtalk.training.demand import DemandConfig, train_demand

        config = DemandConfig.tiny() if tiny else DemandConfig()
        if epochs is not None:
            config = replace(config, epochs=epochs)
        if data is not None:
            frame = demand_data.load_csv(data)
        else:
            frame = (
                demand_data.synthetic(seed=config.seed)
                if not tiny
                else demand_data.synthetic(n_series=12, days=500, seed=config.seed)
            )
        result = train_demand(frame, config, out_dir)
        spec = contract.DEMAND
    else:
        from pamtalk.training.esg import EsgConfig, train_esg

        esg_config = EsgConfig.tiny() if tiny else EsgConfig()
        if epochs is not None:
            esg_config = replace(esg_config, epochs=epochs)
        result = train_esg(esg_config, out_dir)  # type: ignore[assignment]
        spec = contract.ESG
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
