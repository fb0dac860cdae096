"""Serving fixtures: a session-wide MLflow store whose two models have tiny trained
champions, and settings that serve from it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from pamtalk.models.contract import DEMAND, ESG, ESG_FEATURES, Kind, ModelContract
from pamtalk.registry import publish, store
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings
from tests.conftest import ModelStore


@pytest.fixture
def registry_uri(model_store: ModelStore, tmp_path: Path) -> str:
    """This test's own copy of the trained store (aliases may change)."""
    return model_store.copy(tmp_path / "store")


@pytest.fixture
def serving_settings(registry_uri: str) -> Settings:
    return Settings(env="test", mlflow_tracking_uri=registry_uri, model_watch_interval=0)


@pytest.fixture
def registry(serving_settings: Settings) -> MlflowClient:
    return store.connect(serving_settings)


@pytest.fixture
async def service(serving_settings: Settings) -> AsyncIterator[PredictorService]:
    predictor = PredictorService(serving_settings)
    await predictor.start()
    yield predictor
    await predictor.close()


def example(contract: ModelContract, rows: int, seed: int = 0) -> list[np.ndarray]:
    """Plausible inputs of ``rows`` rows for either model."""
    rng = np.random.default_rng(seed)
    if contract is ESG:
        practices = rng.random((rows, ESG_FEATURES), dtype=np.float32)
        return [practices, np.ones_like(practices)]
    assert contract is DEMAND
    history = rng.uniform(50, 500, (rows, *DEMAND.inputs[0].shape[1:])).astype(np.float32)
    calendar = np.zeros((rows, *DEMAND.inputs[1].shape[1:]), np.float32)
    return [history, calendar]


@pytest.fixture
def serving_registry(registry_uri: str) -> str:
    """The API (tests/conftest.py's ``app``, both stacks) serves this test's trained store."""
    return registry_uri


def new_version(client: MlflowClient, settings: Settings, kind: Kind, work: Path) -> str:
    """Train and register another tiny version (same seed: the same numbers, a new label)."""
    _, version = publish.train_and_register(client, settings, kind, out_dir=work, tiny=True)
    return version


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A local Ray of the test's own (RAY_ADDRESS ignored: never someone else's cluster),
    started as on an external cluster (by the test, not the backend); Serve and Ray are shut
    down after. Ray is imported here, not at collection: importing ray.serve warns."""
    import ray
    from ray import serve

    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=256 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]  # ray 2.60 leaves it unannotated
        ray.shutdown()
