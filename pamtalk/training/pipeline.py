"""The one way a model is trained: resolve its data, train it, build a registrable candidate.

    source, described = resolve_source("demand")      # the Jeju data when present, else None
    result = train("esg", out_dir=Path("var/train/esg"), tiny=True)     # a TrainResult
    candidate = build_candidate("demand", out_dir=Path("var/train/demand"), epochs=3)

`python -m pamtalk.training.demand|esg` (main, below), `pamtalk train` and `pamtalk init`
(both through registry.publish.train_and_register, which also registers) all come through
here, so that each trains on the same data with the same config.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeAlias, TypeVar

import pandas as pd

from pamtalk.models.contract import Kind, by_kind
from pamtalk.models.demand.data import JEJU_TRAIN, load_csv
from pamtalk.models.demand.synthetic import synthetic
from pamtalk.training import candidate
from pamtalk.training.candidate import Candidate
from pamtalk.training.demand import DemandConfig, train_demand
from pamtalk.training.esg import EsgConfig, train_esg
from pamtalk.training.result import TrainResult

# What demand trains on: a CSV of the Jeju shape, a frame of data.py's shape (such as the
# platform's daily aggregate, data.from_daily_aggregate), or None: generated data.
Data: TypeAlias = Path | pd.DataFrame | None
Config = TypeVar("Config", DemandConfig, EsgConfig)


def resolve_source(kind: str, data: Data = None, *, tiny: bool = False) -> tuple[Data, str]:
    """What ``kind`` trains on, and its description for people: ``data`` when given; else,
    for demand, the Jeju data when present (and the run is not tiny); else None, generated
    data. ValueError for an unknown kind and for data the model cannot take."""
    kind = by_kind(kind).kind
    if kind == "esg":
        if data is not None:
            raise ValueError("the ESG model trains on generated farm profiles: it takes no data")
        return None, "generated farm profiles"
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise ValueError("the demand frame has no rows")
        days = f"{data['date'].min():%Y-%m-%d} .. {data['date'].max():%Y-%m-%d}"
        return data, f"a frame of {data['series'].nunique()} series, {days}"
    if data is not None:
        if not data.is_file():
            raise ValueError(f"{data} does not exist")
        return data, str(data)
    if not tiny and JEJU_TRAIN.is_file():
        return JEJU_TRAIN, f"the Jeju data ({JEJU_TRAIN})"
    return None, "generated data"


def first_run_demand() -> DemandConfig:
    """``pamtalk init``'s default demand model: the test-sized network on the real data (the
    Jeju data when present), about 2 s of CPU; it still beats the seasonal-naive baseline.
    The full config is ``pamtalk train demand``."""
    return DemandConfig.tiny()


def first_run_esg() -> EsgConfig:
    """``pamtalk init``'s default ESG model: about 8 s of CPU, within ~1.3 points of the
    methodology (the full config: ~0.2 points, in minutes; ``pamtalk train esg``)."""
    tiny = EsgConfig.tiny()
    return replace(
        tiny,
        n_train=12_000,
        n_val=1_500,
        n_eval=1_500,
        hidden=128,
        layers=3,
        fit=replace(tiny.fit, epochs=8),
    )


def train(
    kind: str,
    *,
    out_dir: Path,
    data: Data = None,
    epochs: int | None = None,
    tiny: bool = False,
    first_run: bool = False,
) -> TrainResult:
    """Train ``kind`` on resolve_source's data with its default config (``tiny``: the
    test-sized one on small data; ``first_run``: pamtalk init's small one on the real data;
    ``epochs`` overrides the epochs). Plots and tables land in ``out_dir``."""
    source, _ = resolve_source(kind, data, tiny=tiny)
    if kind == "demand":
        demand = first_run_demand() if first_run else DemandConfig()
        config = _epochs(DemandConfig.tiny() if tiny else demand, epochs)
        if isinstance(source, pd.DataFrame):
            frame = source
        elif source is not None:
            frame = load_csv(source)
        elif tiny:
            frame = synthetic(n_series=12, days=500, seed=config.fit.seed)
        else:
            frame = synthetic(seed=config.fit.seed)
        return train_demand(frame, config, out_dir)
    esg = first_run_esg() if first_run else EsgConfig()
    return train_esg(_epochs(EsgConfig.tiny() if tiny else esg, epochs), out_dir)


def build_candidate(
    kind: str,
    *,
    out_dir: Path,
    data: Data = None,
    epochs: int | None = None,
    tiny: bool = False,
    first_run: bool = False,
) -> Candidate:
    """train(), then export()."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = train(kind, out_dir=out_dir, data=data, epochs=epochs, tiny=tiny, first_run=first_run)
    return export(kind, result, out_dir)


def export(kind: str, result: TrainResult, out_dir: Path) -> Candidate:
    """A trained model to ONNX, its parity checked, quantized and timed (candidate.build)."""
    return candidate.build(
        result.model,
        by_kind(kind),
        example_inputs=result.example_inputs,
        eval_inputs=result.eval_inputs,
        calibration_inputs=result.calibration_inputs,
        evaluate=result.evaluate,
        metrics=result.metrics,
        params=result.params,
        fingerprint=result.fingerprint,
        table=result.table,
        plots=result.plots,
        out_dir=out_dir,
    )


def main(kind: Kind, argv: Sequence[str] | None = None) -> None:
    """``python -m pamtalk.training.<kind>``: train and print the evaluation (no export, no
    registry: that is ``pamtalk train``)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m pamtalk.training.{kind}", description=f"Train the {kind} model."
    )
    parser.add_argument("--out", type=Path, default=Path("var/train") / kind)
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--tiny", action="store_true", help="the test-sized config")
    if kind == "demand":
        parser.add_argument(
            "--data",
            type=Path,
            help="a CSV of the Jeju shape (default: ../shared's Jeju data when present, "
            "else generated data)",
        )
        parser.add_argument(
            "--synthetic", action="store_true", help="generated data, even beside the Jeju data"
        )
    args = parser.parse_args(argv)
    data: Data = getattr(args, "data", None)
    if getattr(args, "synthetic", False):
        if data is not None:
            parser.error("give at most one of --data and --synthetic")
        data = synthetic()
    try:
        _, described = resolve_source(kind, data, tiny=args.tiny)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"training {kind} on {described} ...")
    result = train(kind, out_dir=args.out, data=data, epochs=args.epochs, tiny=args.tiny)
    print(result.table)
    print(json.dumps({k: round(v, 4) for k, v in result.metrics.items()}, indent=2))
    for name, path in result.plots.items():
        print(f"{name}: {path}")
    print(f"fingerprint {result.fingerprint}")


def _epochs(config: Config, epochs: int | None) -> Config:
    return config if epochs is None else replace(config, fit=replace(config.fit, epochs=epochs))
