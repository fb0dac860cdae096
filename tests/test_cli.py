from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pamtalk.settings import Settings

PAMTALK = str(Path(sys.executable).parent / "pamtalk")


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAMTALK, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("init", "serve", "db"):
        assert command in result.stdout


def test_init_on_a_fresh_directory_uses_embedded_defaults(tmp_path: Path) -> None:
    env = {"PAMTALK_ADMIN_API_KEY": "k" * 40}
    for key in ("PAMTALK_DATABASE_URL", "PAMTALK_REDIS_URL"):
        env[key] = ""
    env = {k: v for k, v in env.items() if v}
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PAMTALK_DATABASE_URL", "PAMTALK_REDIS_URL")
    }
    result = subprocess.run(
        [PAMTALK, "init"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "seeded" in result.stdout and "admin API key" in result.stdout
    assert (tmp_path / "var" / "pamtalk.db").exists()
    again = subprocess.run(
        [PAMTALK, "init"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "already has farms" in again.stdout
    seed = subprocess.run(
        [PAMTALK, "db", "seed"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seed.returncode == 1


def test_prod_refuses_demo_data_and_weak_admin_key(tmp_path: Path) -> None:
    result = run(
        "db",
        "seed",
        env={"PAMTALK_ENV": "prod", "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db"},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "refuses demo users" in result.stderr
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(env="prod", admin_api_key="short")
