"""The one training entry: where the data comes from, and `python -m` going through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pamtalk.models.demand.synthetic import synthetic
from pamtalk.training import pipeline
from pamtalk.training.pipeline import main, resolve_source


def test_explicit_data_is_used_as_given(tmp_path: Path) -> None:
    frame = synthetic(n_series=3, days=30, seed=0)
    source, described = resolve_source("demand", frame)
    assert source is frame and described == "a frame of 3 series, 2020-01-01 .. 2020-01-30"
    csv = tmp_path / "prices.csv"
    csv.write_text("ID,timestamp,item,corporation,location,supply(kg),price(원/kg)\n")
    assert resolve_source("demand", csv) == (csv, str(csv))


def test_the_jeju_default_and_generated_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jeju = tmp_path / "train.csv"
    monkeypatch.setattr(pipeline, "JEJU_TRAIN", jeju)
    assert resolve_source("demand") == (None, "generated data")  # absent: generated data
    jeju.touch()
    assert resolve_source("demand") == (jeju, f"the Jeju data ({jeju})")
    assert resolve_source("demand", tiny=True) == (None, "generated data")  # tests stay small
    assert resolve_source("esg") == (None, "generated farm profiles")


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("weather", None, "unknown model kind 'weather'; kinds: demand, esg"),
        ("esg", Path("prices.csv"), "takes no data"),
        ("demand", Path("absent.csv"), "absent.csv does not exist"),
        ("demand", synthetic(n_series=1, days=3).iloc[:0], "no rows"),
    ],
)
def test_what_cannot_be_trained_on_says_why(kind: str, data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_source(kind, data)  # type: ignore[arg-type]


def test_main_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main("demand", ["--tiny", "--synthetic", "--epochs", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith("training demand on a frame of 24 series, 2020-01-01 .. ")
    assert '"mase":' in out and (tmp_path / "metrics.json").is_file()


def python_m(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_python_dash_m_goes_through_the_pipeline(tmp_path: Path) -> None:
    absent = tmp_path / "absent.csv"
    refused = python_m("pamtalk.training.demand", "--data", str(absent), "--out", str(tmp_path))
    assert refused.returncode == 2 and "absent.csv does not exist" in refused.stderr
    esg = python_m("pamtalk.training.esg", "--tiny", "--epochs", "1", "--out", str(tmp_path))
    assert esg.returncode == 0, esg.stderr
    assert esg.stdout.startswith("training esg on generated farm profiles ...")
    assert "best epoch 1 of 1" in esg.stdout and (tmp_path / "esg_learning_curve.png").is_file()
