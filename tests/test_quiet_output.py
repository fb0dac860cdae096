"""Quiet, honest output (issue 19 item 7): no progress bars written into files or pipes, and
every command's --help complete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from typer.main import get_command
from typer.testing import CliRunner

from pamtalk.cli import app
from pamtalk.training.loop import FitConfig, fit


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):  # a group (typer vendors its own click)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_commands(get_command(app)))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_describes_every_argument_and_option(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    assert command.help, f"{' '.join(path)} has no description"
    for param in command.params:
        assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"
    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    # rich markup eats [words] in help texts: "TOML file overriding the SLOs (, )"
    assert "(, )" not in shown.output and "()" not in shown.output, shown.output


def test_training_draws_no_bar_into_a_file(capfd: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    batch = [torch.randn(8, 2), torch.randn(8, 1)]

    def loss(m: nn.Module, b: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return nn.functional.mse_loss(m(b[0]), b[1])

    fit(model, lambda _: [batch] * 3, [batch], loss, FitConfig(epochs=2, progress=True))
    out, err = capfd.readouterr()
    assert "\r" not in out + err and "it/s" not in out + err  # no bar: not a terminal
    assert "epoch 1:" in out + err  # the epoch lines still say where training is
