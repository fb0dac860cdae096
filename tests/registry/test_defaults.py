"""`pamtalk init`'s model step: train, register and promote what has no champion."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from pamtalk.registry import defaults, promote
from pamtalk.settings import Settings


def test_ensure_champions_trains_and_promotes_once(
    client: MlflowClient, settings: Settings, tmp_path: Path
) -> None:
    said: list[str] = []
    promoted = defaults.ensure_champions(
        client, settings, tmp_path / "train", say=said.append, tiny=True
    )
    assert promoted == ["pamtalk-demand", "pamtalk-esg"]
    for name in promoted:
        resolved = promote.resolve(client, name)
        assert resolved is not None and resolved.version == "1"
        assert resolved.fp32.exists()
    assert any("promoted to champion" in line for line in said)
    assert defaults.ensure_champions(client, settings, tmp_path / "train", tiny=True) == []
