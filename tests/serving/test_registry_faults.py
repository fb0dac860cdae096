"""Serving under registry faults: a real ``mlflow server`` killed and brought back, a promoted
version whose file is corrupt, one that fails its warm-up. The loaded versions keep serving,
a metric and one log line say why, and what was promoted meanwhile is applied afterwards."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from pamtalk.models.contract import ESG
from pamtalk.registry import promote, publish, store
from pamtalk.registry.digests import INT8_ARTIFACT
from pamtalk.serving.service import PredictorService, fetch
from pamtalk.settings import Settings
from pamtalk.training import onnx_export
from pamtalk.training.candidate import Candidate
from tests import services
from tests.registry.conftest import TinyEsg, example_inputs
from tests.serving.conftest import example, new_version

ESG_NAME = ESG.registered_name


def refusals(version: str, reason: str) -> float:
    labels = {"model": ESG_NAME, "version": version, "reason": reason}
    return REGISTRY.get_sample_value("model_refused_total", labels) or 0.0


def stored_onnx(client: MlflowClient, version: str) -> Path:
    """The registered file itself (not a downloaded copy) of a version in a local store."""
    source = str(client.get_model_version(ESG_NAME, version).source)  # models:/<logged id>
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    return Path(urlparse(location).path) / "model.onnx"


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_corrupt_version_is_refused_and_the_champion_serves_on(
    registry: MlflowClient,
    serving_settings: Settings,
    service: PredictorService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    version = new_version(registry, serving_settings, "esg", tmp_path / "train")
    path = stored_onnx(registry, version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the file may still parse
    path.write_bytes(bytes(data))

    with pytest.raises(promote.ArtifactCorrupt, match="corrupt or was replaced"):
        promote.promote(registry, ESG_NAME, version)  # the gates download it too
    # Promoted anyway, behind the gates' back (the MLflow UI, a script).
    registry.set_registered_model_alias(ESG_NAME, promote.CHAMPION, version)
    with caplog.at_level(logging.INFO, logger="pamtalk.serving.service"):
        for _ in range(2):
            await service.sync(ESG_NAME)
            answer = await service.infer(ESG_NAME, example(ESG, 2))
            assert answer.version == "1"

    assert refusals(version, "corrupt") == 1  # refused once, not retried every sync
    (line,) = messages(caplog, f"refusing {ESG_NAME} v{version}")
    assert "corrupt" in line and "still serving v1" in line


async def test_a_version_that_fails_its_warm_up_is_refused(
    registry: MlflowClient,
    serving_settings: Settings,
    service: PredictorService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inputs = example_inputs()
    path = onnx_export.export(TinyEsg(broken=True), inputs, ESG, tmp_path / "nan.onnx")
    candidate = Candidate(
        contract=ESG,
        fp32=path,
        int8=None,
        metrics={"mae_complete": 1.0},
        params={},
        example_inputs=inputs,
        fingerprint="warm-up-test",
        table="",
    )
    version = publish.register(registry, serving_settings, candidate)
    registry.set_registered_model_alias(ESG_NAME, promote.CHAMPION, version)

    with caplog.at_level(logging.INFO, logger="pamtalk.serving.service"):
        await service.sync(ESG_NAME)
    assert (await service.infer(ESG_NAME, example(ESG, 1))).version == "1"
    assert refusals(version, "load_failed") == 1
    (line,) = messages(caplog, f"refusing {ESG_NAME} v{version}")
    assert "non-finite warm-up outputs" in line


async def test_serving_outlives_a_registry_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = services.MlflowServer(tmp_path / "mlflow")
    server.root.mkdir()
    server.start()
    try:
        settings = Settings(env="test", mlflow_tracking_uri=server.url, model_watch_interval=0.2)
        client = store.connect(settings)
        first = new_version(client, settings, "esg", tmp_path / "first")
        promote.promote(client, ESG_NAME, first)
        second = new_version(client, settings, "esg", tmp_path / "second")
        service = PredictorService(settings)
        await service.start()
        try:
            with caplog.at_level(logging.INFO, logger="pamtalk.serving.service"):
                server.stop()
                # The data scientist promotes meanwhile, in the store the server will read.
                direct = MlflowClient(tracking_uri=server.store_uri, registry_uri=server.store_uri)
                direct.set_registered_model_alias(ESG_NAME, promote.CHAMPION, second)
                for _ in range(12):  # several watch rounds, backing off, while it is down
                    assert (await service.infer(ESG_NAME, example(ESG, 2))).version == first
                    await asyncio.sleep(0.5)
                assert REGISTRY.get_sample_value("model_registry_up") == 0
                assert len(messages(caplog, "model registry unreachable")) == 1

                server.start()
                for _ in range(240):
                    if service.routers[ESG_NAME].champion.version == second:  # type: ignore[union-attr]
                        break
                    await asyncio.sleep(0.25)
            assert (await service.infer(ESG_NAME, example(ESG, 2))).version == second
            assert REGISTRY.get_sample_value("model_registry_up") == 1
            assert len(messages(caplog, "model registry reachable again")) == 1
        finally:
            await service.close()
    finally:
        server.stop()


def test_a_corrupt_int8_file_is_refused(
    registry: MlflowClient, serving_settings: Settings, tmp_path: Path
) -> None:
    """The int8 file is served through the same digest check as fp32's."""
    version = new_version(registry, serving_settings, "esg", tmp_path / "train")
    assert fetch(registry, serving_settings, ESG_NAME, version).precision == "int8"
    run_id = promote.version_of(registry, ESG_NAME, version).run_id
    stored = Path(urlparse(registry.get_run(run_id).info.artifact_uri).path) / INT8_ARTIFACT
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(promote.ArtifactCorrupt, match=r"model\.int8\.onnx has SHA-256"):
        fetch(registry, serving_settings, ESG_NAME, version)
