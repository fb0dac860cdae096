from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pamtalk.settings import Settings

PAMTALK = str(Path(sys.executable).parent / "pamtalk")


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`pamtalk ARGS` in ``cwd`` with the embedded defaults unless ``env`` says otherwise."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_")}
    return subprocess.run(
        [PAMTALK, *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("init", "serve", "db"):
        assert command in result.stdout


def test_init_on_a_fresh_directory_uses_embedded_defaults(tmp_path: Path) -> None:
    key = {"PAMTALK_ADMIN_API_KEY": "k" * 40}
    first = run("init", "--no-models", cwd=tmp_path, **key)
    assert first.returncode == 0, first.stderr
    assert "seeded" in first.stdout and "admin API key" in first.stdout
    assert (tmp_path / "var" / "pamtalk.db").exists()

    again = run("init", "--no-models", cwd=tmp_path, **key)
    assert again.returncode == 0 and "already has farms" in again.stdout
    assert "admin API key" not in again.stdout  # registered once
    assert run("db", "seed", cwd=tmp_path).returncode == 1


def test_prod_refuses_demo_data_and_weak_admin_key(tmp_path: Path) -> None:
    secret = "0f3c9a7e51b24d8896ea2c4b7d10f5e3a8c6b9d2e4f70a1b3c5d7e9f2a4b6c8d"
    result = run("db", "seed", cwd=tmp_path, PAMTALK_ENV="prod", PAMTALK_SECRET_KEY=secret)
    assert result.returncode == 2
    assert "refuses demo users" in result.stderr
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(env="prod", admin_api_key="short")


def test_models_commands_explain_themselves(tmp_path: Path) -> None:
    store = {"PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    unmigrated = run("models", "rollback", "pamtalk-esg", cwd=tmp_path, **store)
    assert unmigrated.returncode == 2 and "pamtalk db upgrade" in unmigrated.stderr
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0  # the audit trail's home
    empty = run("models", "list", cwd=tmp_path, **store)
    assert empty.returncode == 0 and "no registered models yet" in empty.stdout
    unknown = run("models", "promote", "pamtalk-nothing", "1", cwd=tmp_path, **store)
    assert unknown.returncode == 1 and "unknown model" in unknown.stderr
    no_history = run("models", "rollback", "pamtalk-esg", cwd=tmp_path, **store)
    assert no_history.returncode == 1 and "no registered versions" in no_history.stderr
    bad_kind = run("train", "weather", cwd=tmp_path, **store)
    assert bad_kind.returncode == 2 and "demand or esg" in bad_kind.stderr
