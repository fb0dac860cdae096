"""Execution-provider choice: the best GPU provider present, the CPU always last; an
explicit ``cuda`` without one is refused rather than silently served from the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pamtalk.cli import app as cli
from pamtalk.gpu.providers import CPU, CUDA, TENSORRT, DeviceUnavailable, choose
from pamtalk.models.contract import ESG
from pamtalk.registry import promote, store
from pamtalk.serving.runtime import Artifact, OnnxModel
from pamtalk.settings import Settings
from tests.conftest import ModelStore
from tests.serving.conftest import example


def names(specs: list[tuple[str, dict[str, object]]]) -> list[str]:
    return [name for name, _ in specs]


def test_choice_order_and_fallback(tmp_path: Path) -> None:
    gpu_box = [TENSORRT, CUDA, CPU]
    assert names(choose("auto", gpu_box)) == [TENSORRT, CUDA, CPU]
    assert names(choose("cuda", [CUDA, CPU])) == [CUDA, CPU]
    assert names(choose("cpu", gpu_box)) == [CPU]
    assert names(choose("auto", [CPU])) == [CPU]  # this machine: falls back
    with pytest.raises(DeviceUnavailable, match="PAMTALK_DEVICE=cuda"):
        choose("cuda", [CPU])
    trt = dict(choose("auto", gpu_box, cache_dir=tmp_path / "trt"))[TENSORRT]
    assert trt["trt_engine_cache_enable"] and (tmp_path / "trt").is_dir()


def test_session_reports_what_it_got_and_warms_up(model_store_settings: Settings) -> None:
    resolved = promote.resolve(store.connect(model_store_settings), ESG.registered_name)
    assert resolved is not None
    artifact = Artifact(ESG.registered_name, "1", resolved.fp32, "fp32")
    model = OnnxModel(artifact, ESG, device="auto", threads=1, warmup_batches=[1, 8, 64])
    assert not model.ready and model.device == "unloaded"
    model.load()  # runs the warm-up batches
    assert model.ready and model.device == "cpu"
    (scores,) = model.predict(example(ESG, 5))
    assert scores.shape == (5, 4, 3) and np.isfinite(scores).all()
    model.unload()
    assert not model.ready


def test_gpu_info_command() -> None:
    result = CliRunner().invoke(cli, ["gpu", "info"])
    assert result.exit_code == 0, result.output
    assert "providers_available" in result.output and CPU in result.output


@pytest.fixture
def model_store_settings(model_store: ModelStore, tmp_path: Path) -> Settings:
    return Settings(mlflow_tracking_uri=model_store.copy(tmp_path / "m"))
