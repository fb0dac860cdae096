"""The model runtime: a row's answer does not depend on how many rows share its batch."""

from __future__ import annotations

import numpy as np
import pytest

from pamtalk.models.contract import CONTRACTS
from pamtalk.registry import promote, store
from pamtalk.serving.runtime import Artifact, OnnxModel
from pamtalk.settings import Settings
from tests.serving.conftest import example


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_row_alone_gets_the_answer_it_gets_in_any_batch(
    serving_settings: Settings, name: str
) -> None:
    """ONNX Runtime's CPU kernels take another path for a single row; the runtime runs a lone
    row so that its answer is bit for bit the one it gets among others (online requests
    are batched with whatever arrives, nightly chunks hold thousands of rows)."""
    resolved = promote.resolve(store.connect(serving_settings), name)
    assert resolved is not None
    contract = CONTRACTS[name]
    model = OnnxModel(Artifact(name, "1", resolved.fp32, "fp32"), contract, "cpu", threads=1)
    model.load()
    inputs = example(contract, 64, seed=3)
    together = model.predict(inputs)[0]
    for size in (1, 2, 5, 64):
        for start in range(0, 64, size):
            alone = model.predict([array[start : start + size] for array in inputs])[0]
            np.testing.assert_array_equal(alone, together[start : start + size])
