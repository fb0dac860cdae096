"""The predictor service on the local backend: champions served, versions swapped live."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from mlflow import MlflowClient

from pamtalk.errors import InvalidInput, NotFound
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.registry import promote
from pamtalk.registry.digests import INT8_SCHEME_TAG
from pamtalk.serving.service import PredictorService, fetch
from pamtalk.settings import Settings
from tests.serving.conftest import example


async def test_champions_answer_with_their_version(service: PredictorService) -> None:
    for contract, shape in ((ESG, (3, 4, 3)), (DEMAND, (3, 28, 3))):
        result = await service.infer(contract.registered_name, example(contract, 3))
        assert (result.model, result.version, result.role) == (
            contract.registered_name,
            "1",
            "champion",
        )
        assert result.outputs[0].shape == shape
        assert np.isfinite(result.outputs[0]).all()


async def test_bad_inputs_are_refused_alone(service: PredictorService) -> None:
    practices, mask = example(ESG, 2)
    with pytest.raises(InvalidInput, match="practices must have shape"):
        await service.infer("pamtalk-esg", [practices[:, :5], mask])
    with pytest.raises(InvalidInput, match="batch size"):
        await service.infer("pamtalk-esg", [practices, mask[:1]])
    with pytest.raises(NotFound):
        await service.infer("pamtalk-nope", [practices, mask])
    with pytest.raises(NotFound, match="not being served"):
        await service.infer("pamtalk-esg", [practices, mask], version="9")


async def test_served_versions_are_static_int8_on_the_cpu_by_default(
    service: PredictorService,
) -> None:
    """Both tiny champions' int8 files passed their gate (within 1 % of fp32's metric)."""
    served = {(s.model, s.version, s.role, s.precision, s.device) for s in service.served()}
    assert served == {
        ("pamtalk-demand", "1", "champion", "int8", "cpu"),
        ("pamtalk-esg", "1", "champion", "int8", "cpu"),
    }


def test_fp32_is_served_when_asked_or_when_the_int8_file_is_not_static(
    serving_settings: Settings, registry: MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    fp32 = serving_settings.model_copy(update={"serving_precision": "fp32"})
    assert fetch(registry, fp32, "pamtalk-esg", "1").precision == "fp32"
    int8 = fetch(registry, serving_settings, "pamtalk-esg", "1")
    assert int8.precision == "int8" and int8.path.name == "model.int8.onnx"
    # A version quantized before static int8 has no scheme tag: its (dynamic) int8 file
    # would make a row's answer depend on its batch, so it is not served.
    run_id = promote.version_of(registry, "pamtalk-esg", "1").run_id
    registry.delete_tag(run_id, INT8_SCHEME_TAG)
    with caplog.at_level(logging.INFO, logger="pamtalk.serving.service"):
        assert fetch(registry, serving_settings, "pamtalk-esg", "1").precision == "fp32"
    assert "pamtalk-esg v1: serving fp32 (no servable int8 file" in caplog.text
