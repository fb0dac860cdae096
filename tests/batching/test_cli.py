"""`pamtalk batch score`: on the workers when a broker is configured (--wait follows the job
to its end), in this process on SQLite when none is; the same rows either way."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest

from pamtalk.models.contract import DEMAND, ESG
from tests.batching.conftest import (
    DEMAND_ROWS,
    PAMTALK,
    SEED,
    SERIES,
    Broker,
    Database,
    Workers,
    process_env,
)

RUN_DATE = date(2026, 11, 24)
CHUNKS = -(-SERIES // 32) + 1  # PAMTALK_BATCH_DEMAND_CHUNK=32, and one chunk of farms
PINNED = {DEMAND.registered_name: "1", ESG.registered_name: "1"}


def pamtalk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAMTALK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def reported(stdout: str) -> tuple[int, int]:
    """The job id and rows written from the command's last line."""
    found = re.search(
        rf"^job (\d+) completed: {CHUNKS}/{CHUNKS} chunks, (\d+) rows, [\d.]+ rows/s$",
        stdout,
        re.MULTILINE,
    )
    assert found, stdout
    return int(found[1]), int(found[2])


@pytest.mark.services
async def test_batch_score_on_the_workers_waits_and_reports(
    database: Database, broker: Broker, workers: Workers, tmp_path: Path
) -> None:
    workers.running()
    result = await asyncio.to_thread(
        pamtalk, "batch", "score", "--date", RUN_DATE.isoformat(), "--wait",
        env=workers.env(), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + workers.logs()
    job_id, rows_written = reported(result.stdout)
    assert f"job {job_id}: {CHUNKS} chunks at {PINNED}" in result.stdout
    assert "queued" not in result.stdout  # --wait followed it to the end

    farms = await database.active_farms()
    rows = await database.rows(RUN_DATE)
    assert rows.demand == rows.demand_keys == DEMAND_ROWS
    assert rows.esg == rows.esg_keys == farms
    assert rows_written == rows.total == DEMAND_ROWS + farms
    assert rows.job_ids == {job_id}
    job = await database.job(job_id)
    assert (job.chunks_done, job.rows_written) == (CHUNKS, rows_written)


def test_batch_score_without_a_broker_runs_here_on_sqlite(
    registry_uri: str, tmp_path: Path
) -> None:
    path = tmp_path / "pamtalk.db"
    env = process_env(
        PAMTALK_ENV="test",
        PAMTALK_DATABASE_URL=f"sqlite+aiosqlite:///{path}",
        PAMTALK_MLFLOW_TRACKING_URI=registry_uri,
        PAMTALK_MODEL_WATCH_INTERVAL="0",
        PAMTALK_BATCH_DEMAND_CHUNK="32",
    )  # and no PAMTALK_CELERY_BROKER_URL
    for args in (
        ("db", "upgrade"),
        ("db", "seed", "--farms", str(SEED.farms), "--transactions", str(SEED.transactions)),
    ):
        done = pamtalk(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr

    result = pamtalk("batch", "score", "--date", RUN_DATE.isoformat(), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    job_id, rows_written = reported(result.stdout)
    assert f"job {job_id}: {CHUNKS} chunks at {PINNED}" in result.stdout

    with sqlite3.connect(path) as db:
        forecasts, series, versions = db.execute(
            "SELECT count(*), count(DISTINCT crop || ':' || region), group_concat(DISTINCT"
            " model_version) FROM demand_forecasts WHERE run_date = ?",
            (RUN_DATE.isoformat(),),
        ).fetchone()
        assessments = db.execute(
            "SELECT count(*) FROM esg_assessments WHERE run_date = ?", (RUN_DATE.isoformat(),)
        ).fetchone()[0]
        farms = db.execute("SELECT count(*) FROM farms WHERE status = 'active'").fetchone()[0]
        status = db.execute("SELECT status FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
    db.close()
    # The same rows as on the workers: every series' 28 days and every active farm.
    assert (forecasts, series, versions) == (DEMAND_ROWS, SERIES, "1")
    assert assessments == farms > 0
    assert rows_written == forecasts + assessments
    assert status == ("completed",)
