"""Train the ESG model to reproduce the methodology, with uncertainty bands when inputs are
missing.

Steps, top to bottom:
1. generate realistic Korean farm profiles (models/esg/profiles.py), one set each for
   training, validation and evaluation, from one seed;
2. score every complete profile with the methodology: the targets (E, S, G, overall);
3. encode them once, then hide inputs at random (features.hide, no re-encoding): a fresh draw
   every training epoch, some rows complete and the others with a per-row missing rate drawn
   from 0..max_missing; one fixed draw for validation;
4. fit the network with the pinball loss at p10/p50/p90 (training/loop.py);
5. evaluate against the methodology's score of the complete profile (models/esg/evaluate.py):
   with complete inputs, with 30 % of the practices missing, and with 30 % of all inputs
   missing; write plots.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pamtalk.models import contract
from pamtalk.models.esg import factors, features, methodology, profiles
from pamtalk.models.esg.evaluate import Split, baselines, evaluator, format_table, targets
from pamtalk.models.esg.network import EsgNet
from pamtalk.models.esg.plots import plot_scatter
from pamtalk.training.loop import (
    Batch,
    FitConfig,
    batches,
    fit,
    flat_params,
    seed_everything,
    torch_threads,
)
from pamtalk.training.losses import pinball_loss
from pamtalk.training.plots import plot_learning_curve
from pamtalk.training.quantize import calibration_rows
from pamtalk.training.result import TrainResult, torch_predictor


@dataclass(frozen=True)
class EsgConfig:
    # Data: farms generated per split.
    n_train: int = 60_000
    n_val: int = 6_000
    n_eval: int = 6_000
    complete_share: float = 0.25  # training rows with every input reported
    max_missing: float = 0.6  # the other rows: each practice missing with p ~ U(0, this)
    farm_missing_factor: float = 0.25  # farm-record fields go missing at this x that rate
    eval_missing: float = 0.3  # missing rate of the evaluation's incomplete inputs
    # Network.
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.0
    # Optimisation (training.loop.fit).
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(epochs=60, lr=2e-3, weight_decay=1e-5, patience=10)
    )

    @classmethod
    def tiny(cls) -> EsgConfig:
        """Seconds on a laptop: for tests."""
        return cls(
            n_train=1_500,
            n_val=300,
            n_eval=300,
            hidden=32,
            layers=2,
            fit=replace(cls().fit, epochs=3, batch_size=128, progress=False),
        )


# --- 1-3. Data -------------------------------------------------------------------------------


PRACTICE = np.isin(methodology.INPUT_KEYS, methodology.PRACTICE_KEYS)  # [K]


def reported_keys(rates: np.ndarray, farm_factor: float, rng: np.random.Generator) -> np.ndarray:
    """[N, K] 1 where an input (INPUT_KEYS order) stays: each practice is missing with its
    row's rate [N], each farm-record field with farm_factor x that rate (missing at random)."""
    rate = np.where(PRACTICE, rates[:, None], rates[:, None] * farm_factor)  # [N, K]
    return (rng.random(rate.shape) >= rate).astype(np.float32)


def training_rates(n: int, config: EsgConfig, rng: np.random.Generator) -> np.ndarray:
    """[N] per-farm missing rates: 0 for complete_share of them, else U(0, max_missing)."""
    complete = rng.random(n) < config.complete_share
    return np.where(complete, 0.0, rng.uniform(0.0, config.max_missing, n))


def with_hidden(complete: Split, reported: np.ndarray) -> Split:
    return Split(*features.hide(complete.practices, complete.mask, reported), complete.targets)


def drop_keys(farms: Sequence[profiles.Farm], reported: np.ndarray) -> list[profiles.Farm]:
    """The farms as dicts without the inputs ``reported`` [N, K] marks 0."""
    keys = methodology.INPUT_KEYS
    return [
        {k: v for k, v in farm.items() if k not in keys or row[keys.index(k)]}
        for farm, row in zip(farms, reported, strict=True)
    ]


def encoded(farms: Sequence[profiles.Farm]) -> Split:
    return Split(*features.encode_many(farms), targets(farms))


def fingerprint(*splits: Split) -> str:
    digest = hashlib.sha256()
    for s in splits:
        for array in (s.practices, s.mask, s.targets):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# --- The pipeline ----------------------------------------------------------------------------


def train_esg(config: EsgConfig, out_dir: Path) -> TrainResult:
    with torch_threads(config.fit.threads):
        return _train(config, out_dir)


def _train(config: EsgConfig, out_dir: Path) -> TrainResult:
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = config.fit.seed  # the data's draws too

    # 1-2. Profiles and the methodology's scores of them (complete inputs).
    train = encoded(profiles.generate(config.n_train, seed=seed))
    val = encoded(profiles.generate(config.n_val, seed=seed + 10_000))
    eval_farms = profiles.generate(config.n_eval, seed=seed + 20_000)
    complete = encoded(eval_farms)

    # 3. Hidden inputs: drawn afresh for every training epoch, fixed for validation and
    # evaluation. Each draw has its own random stream, so runs repeat exactly.
    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    def hidden_for_training(split: Split, r: np.random.Generator) -> Split:
        rates = training_rates(len(split.targets), config, r)
        return with_hidden(split, reported_keys(rates, config.farm_missing_factor, r))

    def train_batches(epoch: int) -> list[tuple[torch.Tensor, ...]]:
        shown = hidden_for_training(train, rng(100 + epoch))
        return batches(
            shown.practices,
            shown.mask,
            shown.targets,
            batch_size=config.fit.batch_size,
            shuffle_seed=seed + epoch,
        )

    val = hidden_for_training(val, rng(1))
    eval_rates = np.full(config.n_eval, config.eval_missing)
    shown30 = reported_keys(eval_rates, 0.0, rng(2))  # practices only: the API has the record
    shown30all = reported_keys(eval_rates, 1.0, rng(3))
    cases = {
        "complete": complete,
        "missing30": with_hidden(complete, shown30),
        "missing30all": with_hidden(complete, shown30all),
    }
    audited = targets(drop_keys(eval_farms, shown30))  # the methodology's own audit score

    # 4. Fit.
    seed_everything(seed)
    model = EsgNet(contract.ESG_FEATURES, config.hidden, config.layers, config.dropout)

    def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
        practices, mask, y = batch  # [B, F], [B, F], [B, 4]
        # in units of 100 points, so that the loss is of order 0.01-0.1
        return pinball_loss(net(practices, mask), y, contract.ESG_QUANTILES, scale=100.0)

    fitted = fit(
        model,
        train_batches,
        batches(val.practices, val.mask, val.targets, batch_size=4096),
        loss_fn,
        config.fit,
        desc="esg",
    )
    model.load_state_dict(fitted.best_state)
    model.eval()
    seconds = time.perf_counter() - start

    # 5. Evaluate, tabulate, plot.
    evaluate = evaluator(cases)
    predict = torch_predictor(model)
    metrics = {
        **evaluate(predict),
        **baselines(train, complete, audited),
        "train_seconds": seconds,
        "train_best_epoch": float(fitted.best_epoch),
        "train_epochs_run": float(len(fitted.history)),
        "train_final_val_loss": fitted.history[fitted.best_epoch]["val"],
    }
    missing = cases["missing30"]
    plots = {
        "scatter": plot_scatter(
            out_dir / "esg_scatter.png",
            {
                name: (predict(cases[name].practices, cases[name].mask), cases[name].targets)
                for name in ("complete", "missing30")
            },
        ),
        "learning_curve": plot_learning_curve(
            out_dir / "esg_learning_curve.png",
            {"ESG network": fitted.history},
            "pinball loss (/100 points)",
        ),
    }
    example = (
        np.concatenate([complete.practices[:4], missing.practices[:4]]),
        np.concatenate([complete.mask[:4], missing.mask[:4]]),
    )
    # int8 calibration: training farms with inputs hidden as in training
    shown = hidden_for_training(train, rng(99))
    pick = calibration_rows(len(shown.targets))
    return TrainResult(
        model=model,
        metrics=metrics,
        table=format_table(metrics, config.n_eval, config.eval_missing),
        example_inputs=example,
        eval_inputs=(complete.practices, complete.mask),
        calibration_inputs=(shown.practices[pick], shown.mask[pick]),
        evaluate=evaluate,
        plots=plots,
        fingerprint=fingerprint(train, val),
        params={
            **flat_params(config),
            "features": contract.ESG_FEATURES,
            "parameters": sum(p.numel() for p in model.parameters()),
            "factors_origin": factors.default().origin,
        },
    )
