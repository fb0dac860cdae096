"""What ``pamtalk init`` does for models: train, register and promote a default version of
each model that has no champion yet. Training needs the ``train`` extra; a registry whose
models all have champions (trained elsewhere) needs nothing more than the base install."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient

from pamtalk import extras
from pamtalk.models.contract import KINDS, ModelContract
from pamtalk.registry import promote
from pamtalk.settings import Settings


def without_champion(client: MlflowClient) -> list[ModelContract]:
    """The models that have no champion yet, in KINDS' order."""
    return [
        contract
        for contract in KINDS.values()
        if promote.by_alias(client, contract.registered_name, promote.CHAMPION) is None
    ]


def ensure_champions(
    client: MlflowClient,
    settings: Settings,
    work_dir: Path,
    say: Callable[[str], None] = print,
    tiny: bool = False,
    first_run: bool = False,
) -> list[str]:
    """Returns the models it promoted. ``first_run``: pipeline's small first-run configs
    (seconds), ``tiny``: the test-sized ones; the full configs otherwise. Each model gets a
    line before and one after (its main metric; the evaluation table is in its work dir)."""
    todo = without_champion(client)
    if not todo:
        return []
    with extras.needs("train", "training the default models"):
        from pamtalk.registry.publish import train_and_register
        from pamtalk.training.pipeline import resolve_source
    promoted = []
    config = "a first-run" if first_run else "a test-sized" if tiny else "the full"
    for number, contract in enumerate(todo, 1):
        name, out_dir = contract.registered_name, work_dir / contract.kind
        _, described = resolve_source(contract.kind, tiny=tiny)
        say(f"{name} ({number}/{len(todo)}): training {config} model on {described} ...")
        started = time.monotonic()
        built, version = train_and_register(
            client, settings, contract.kind, out_dir=out_dir, tiny=tiny, first_run=first_run
        )
        (out_dir / "evaluation.txt").write_text(built.table + "\n")
        promote.promote(client, name, version)
        metric = contract.main_metric
        say(
            f"{name}: version {version} registered and promoted to champion in "
            f"{time.monotonic() - started:.0f} s ({metric} {built.metrics[metric]:.3f}; "
            f"evaluation: {out_dir / 'evaluation.txt'})"
        )
        promoted.append(name)
    return promoted
