"""Canary, shadow and the alias watcher: the seed's 5 -> 25 -> 50 -> 100 % rollout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from pamtalk.cli import app as cli
from pamtalk.db import manage
from pamtalk.models.contract import ESG
from pamtalk.registry import promote
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings
from tests.serving.conftest import example, new_version

ESG_NAME = ESG.registered_name


def predictions(version: str, role: str) -> float:
    labels = {"model": ESG_NAME, "version": version, "role": role}
    return REGISTRY.get_sample_value("predictions_total", labels) or 0.0


def served_as(version: str, role: str) -> float | None:
    labels = {"model": ESG_NAME, "version": version, "role": role}
    found = [
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "model_version_info"
        for s in metric.samples
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return found[0] if found else None


@pytest.fixture
def cli_env(registry_uri: str, tmp_path: Path) -> dict[str, str]:
    """The CLI's registry, and a migrated database for its audit trail."""
    database = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    asyncio.run(manage.upgrade_database(Settings(database_url=database)))
    return {"PAMTALK_MLFLOW_TRACKING_URI": registry_uri, "PAMTALK_DATABASE_URL": database}


async def canary(env: dict[str, str], *args: str) -> str:
    """`pamtalk models canary ESG ARGS` (in a thread: the command runs its own event loop)."""
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["models", "canary", ESG_NAME, *args], env=env
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_canary_routes_a_sticky_share_then_promotion_completes_it(
    service: PredictorService,
    registry: MlflowClient,
    serving_settings: Settings,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    v2 = await asyncio.to_thread(new_version, registry, serving_settings, "esg", tmp_path)
    answer = await canary(cli_env, v2, "--percent", "25")
    assert "answers 25 %" in answer and "Downloading artifacts" not in answer
    listing = await asyncio.to_thread(
        CliRunner().invoke, cli, ["models", "list", ESG_NAME], env=cli_env
    )
    lines = listing.output.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "ALIASES", "METRIC", "INT8", "TRAFFIC"]
    assert "mae_complete" in lines[1] and lines[1].endswith("75 %")  # the champion, v1
    assert lines[2].endswith("25 % (split)")  # the challenger
    await service.sync(ESG_NAME)
    assert service.routers[ESG_NAME].challenger is not None
    assert served_as(v2, "challenger") == 1.0

    inputs = example(ESG, 1)
    before = predictions(v2, "challenger")
    versions = {
        key: (await service.infer(ESG_NAME, inputs, key=f"user-{key}")).version
        for key in range(400)
    }
    share = sum(v == v2 for v in versions.values()) / len(versions)
    assert 0.15 < share < 0.35
    assert predictions(v2, "challenger") - before == sum(v == v2 for v in versions.values())
    for key in range(0, 400, 37):  # sticky: the same caller sees the same version
        again = await service.infer(ESG_NAME, inputs, key=f"user-{key}")
        assert again.version == versions[key]

    challenger = service.routers[ESG_NAME].challenger
    promote.promote(registry, ESG_NAME, v2)
    await service.sync(ESG_NAME)
    routes = service.routers[ESG_NAME]
    assert routes.champion is challenger  # already warm: reused, not loaded again
    assert routes.challenger is None and routes.percent == 0
    assert served_as(v2, "champion") == 1.0 and served_as("1", "champion") == 0.0
    assert (await service.infer(ESG_NAME, inputs, key="user-1")).version == v2


async def test_shadow_scores_a_copy_while_the_champion_answers(
    service: PredictorService,
    registry: MlflowClient,
    serving_settings: Settings,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    v2 = await asyncio.to_thread(new_version, registry, serving_settings, "esg", tmp_path)
    await canary(cli_env, v2, "--percent", "100", "--shadow")
    await service.sync(ESG_NAME)
    before = predictions(v2, "shadow")
    results = [await service.infer(ESG_NAME, example(ESG, 2, seed=i)) for i in range(10)]
    assert {r.version for r in results} == {"1"}
    for _ in range(200):
        if predictions(v2, "shadow") - before == 10:
            break
        await asyncio.sleep(0.01)
    assert predictions(v2, "shadow") - before == 10

    assert "canary ended" in await canary(cli_env, "--off")
    await service.sync(ESG_NAME)
    assert service.routers[ESG_NAME].challenger is None


async def test_the_watcher_follows_the_champion_alias(
    registry: MlflowClient, serving_settings: Settings, tmp_path: Path
) -> None:
    v2 = await asyncio.to_thread(new_version, registry, serving_settings, "esg", tmp_path)
    service = PredictorService(serving_settings.model_copy(update={"model_watch_interval": 0.1}))
    await service.start()
    try:
        promote.promote(registry, ESG_NAME, v2)
        for _ in range(300):
            if service.deployment(ESG_NAME).version == v2:
                break
            await asyncio.sleep(0.02)
        assert (await service.infer(ESG_NAME, example(ESG, 1))).version == v2
        promote.rollback(registry, ESG_NAME)
        for _ in range(300):
            if service.deployment(ESG_NAME).version == "1":
                break
            await asyncio.sleep(0.02)
        assert (await service.infer(ESG_NAME, example(ESG, 1))).version == "1"
    finally:
        await service.close()


def test_canary_refuses_bad_requests(cli_env: dict[str, str]) -> None:
    env = cli_env
    runner = CliRunner()
    champion = runner.invoke(cli, ["models", "canary", ESG_NAME, "1", "--percent", "5"], env=env)
    assert champion.exit_code == 1 and "already the champion" in champion.output
    missing = runner.invoke(cli, ["models", "canary", ESG_NAME, "42"], env=env)
    assert missing.exit_code == 1 and "no version 42" in missing.output
