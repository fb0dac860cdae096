"""The predictor service on the local backend: champions served, versions swapped live."""

from __future__ import annotations

import numpy as np
import pytest

from pamtalk.errors import InvalidInput, NotFound
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.serving.service import PredictorService
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


async def test_served_versions_are_fp32_by_default(service: PredictorService) -> None:
    served = {(s.model, s.version, s.role, s.precision, s.device) for s in service.served()}
    assert served == {
        ("pamtalk-demand", "1", "champion", "fp32", "cpu"),
        ("pamtalk-esg", "1", "champion", "fp32", "cpu"),
    }
