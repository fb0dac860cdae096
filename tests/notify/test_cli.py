"""Model changes made with the `pamtalk models` commands are notified as well: the command
subscribes the outbox to the audit trail while it runs."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pamtalk.cli.models import _run
from pamtalk.db.models import OutboxEvent
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.registry import events
from pamtalk.settings import Settings
from tests.test_cli import PAMTALK


def test_models_commands_write_model_events_to_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/pamtalk.db"
    env = {"PAMTALK_DATABASE_URL": url, "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    subprocess.run([PAMTALK, "db", "upgrade"], env=env, cwd=tmp_path, check=True, timeout=300)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def rollback(_: Any, sessions: Any, actor: str) -> None:  # as `models rollback` does
        await events.publish(
            sessions, None, model="pamtalk-esg", action="rollback", actor=actor, to_version="1"
        )

    _run(rollback)

    async def written() -> list[OutboxEvent]:
        engine = create_engine(Settings(database_url=url))
        async with create_session_factory(engine).write() as session:
            found = list(await session.scalars(select(OutboxEvent)))
        await engine.dispose()
        return found

    [event] = asyncio.run(written())
    assert event.type == "model.rolled_back" and event.payload["actor"].startswith("cli:")
    assert event.audience["roles"] == ["admin", "analyst"]
