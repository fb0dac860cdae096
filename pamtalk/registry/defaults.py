"""What ``pamtalk init`` does for models: train, register and promote a default version of
each model that has no champion yet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient

from pamtalk.models.contract import KINDS
from pamtalk.registry import promote
from pamtalk.registry.publish import train_and_register
from pamtalk.settings import Settings
from pamtalk.training.pipeline import resolve_source


def ensure_champions(
    client: MlflowClient,
    settings: Settings,
    work_dir: Path,
    say: Callable[[str], None] = print,
    tiny: bool = False,
) -> list[str]:
    """Returns the models it promoted."""
    promoted = []
    for contract in KINDS.values():
        name = contract.registered_name
        if promote.by_alias(client, name, promote.CHAMPION) is not None:
            continue
        _, described = resolve_source(contract.kind, tiny=tiny)
        say(f"{name}: no champion; training a default model on {described} ...")
        built, version = train_and_register(
            client, settings, contract.kind, out_dir=work_dir / contract.kind, tiny=tiny
        )
        say(built.table)
        promote.promote(client, name, version)
        say(f"{name}: version {version} registered and promoted to champion")
        promoted.append(name)
    return promoted
