"""make's install stage: pip's output folded into [install] lines, its status kept."""

from __future__ import annotations

import sys

import pytest

from pamtalk import pip_progress

PIP_OUTPUT = """\
Obtaining file:///work/main
Collecting fastapi>=0.115 (from pamtalk==0.1.0)
  Downloading fastapi-0.136.0-py3-none-any.whl (95 kB)
Requirement already satisfied: numpy>=1.26 in ./.venv/lib/python3.11/site-packages
Collecting torch==2.13.0 (from pamtalk==0.1.0)
  Using cached torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl
Installing collected packages: torch, fastapi, pamtalk
Successfully installed fastapi-0.136.0 pamtalk-0.1.0 torch-2.13.0
"""


def fake_pip(output: str, status: int) -> list[str]:
    """A command that prints ``output`` as pip would and exits with ``status``."""
    return [sys.executable, "-c", f"import sys; print({output!r}, end=''); sys.exit({status})"]


def test_progress_counts_what_pip_did() -> None:
    progress = pip_progress.Progress()
    for line in PIP_OUTPUT.splitlines():
        progress.feed(line)
    assert (progress.collected, progress.satisfied, progress.installed) == (2, 1, 3)
    assert progress.status(12.0) == (
        "[install]   12 s: 2 collected, 1 already there; installing 3 packages"
    )


def test_a_run_prints_a_summary_not_pips_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert pip_progress.run(fake_pip(PIP_OUTPUT, 0)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("[install] 3 packages installed in ")
    assert out[0].startswith("[install] ") and len(out) == 2  # the command, the summary


def test_a_failure_keeps_pips_status_and_shows_its_last_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failing = "Collecting nothing-such\nERROR: No matching distribution found for nothing-such\n"
    assert pip_progress.run(fake_pip(failing, 1)) == 1
    captured = capsys.readouterr()
    assert "No matching distribution found for nothing-such" in captured.err
    assert "failed after" in captured.out and "pip exited 1" in captured.out
