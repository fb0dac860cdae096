"""The one training loop: mini-batches, AdamW, gradient clipping, early stopping on a
validation loss, a progress bar per epoch, deterministic under a seed.

    result = fit(model, train_batches, val_batches, loss_fn, FitConfig(epochs=30), desc="demand")
    model.load_state_dict(result.best_state)
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

Batch = Sequence[torch.Tensor]
# loss_fn(model, batch) -> scalar loss; it knows which tensors are inputs and targets.
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class FitConfig:
    """How a network is fitted; each model's config holds one as ``config.fit``."""

    epochs: int = 30
    batch_size: int = 256  # training rows per batch (the caller batches: see batches())
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without validation improvement before stopping
    grad_clip: float = 1.0
    seed: int = 0  # the run's one seed: weights, shuffles, dropout, the model's data draws
    # torch intra-op threads while training (torch_threads): with networks this small one
    # thread loses little, and it avoids OpenMP spin-waiting that slows training 10-100x when
    # busy processes share the cores
    threads: int = 1
    progress: bool = True


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)  # epoch, train, val


def flat_params(config: Any) -> dict[str, Any]:
    """A model config (a dataclass with a ``fit`` field) as flat parameters for MLflow: its
    own fields and its FitConfig's."""
    fields = asdict(config)
    return {**fields.pop("fit"), **fields}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch intra-op threads for a block (FitConfig.threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def fit(
    model: nn.Module,
    train: Callable[[int], Iterable[Batch]],
    val: Iterable[Batch],
    loss_fn: LossFn,
    config: FitConfig,
    desc: str = "train",
) -> FitResult:
    """``train(epoch)`` yields that epoch's (shuffled) batches; ``val`` is re-iterated each
    epoch. Returns the weights of the epoch with the lowest validation loss."""
    seed_everything(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    best = FitResult(copy.deepcopy(model.state_dict()), best_epoch=-1)
    best_val = math.inf
    for epoch in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        batches = tqdm(
            list(train(epoch)),
            desc=f"{desc} epoch {epoch + 1}/{config.epochs}",
            leave=False,
            disable=None if config.progress else True,  # None: no bar when not a terminal
        )
        for batch in batches:
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += loss.item() * len(batch[0])
            count += len(batch[0])
            batches.set_postfix(loss=f"{total / count:.4f}")
        scheduler.step()
        val_loss = evaluate_loss(model, val, loss_fn)
        best.history.append({"epoch": epoch, "train": total / max(count, 1), "val": val_loss})
        if config.progress:
            tqdm.write(
                f"{desc} epoch {epoch + 1}: train {total / max(count, 1):.4f} val {val_loss:.4f}"
            )
        if val_loss < best_val - 1e-6:
            best_val = val_loss
            best.best_state = copy.deepcopy(model.state_dict())
            best.best_epoch = epoch
        elif epoch - best.best_epoch >= config.patience:
            break
    return best


@torch.no_grad()
def evaluate_loss(model: nn.Module, batches: Iterable[Batch], loss_fn: LossFn) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        total += loss_fn(model, batch).item() * len(batch[0])
        count += len(batch[0])
    return total / max(count, 1)


def batches(
    *arrays: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> list[tuple[torch.Tensor, ...]]:
    """Split aligned arrays into float32 tensor mini-batches, optionally shuffled by seed."""
    n = len(arrays[0])
    order = np.arange(n)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(n)
    tensors = [torch.from_numpy(np.ascontiguousarray(a[order], dtype=np.float32)) for a in arrays]
    return [tuple(t[i : i + batch_size] for t in tensors) for i in range(0, n, batch_size)]
