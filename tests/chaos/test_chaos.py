"""CI's short subset of the fault-injection suite (bench/chaos.py runs every scenario): each a
real fault on a private PostgreSQL / redis-server / ``pamtalk serve`` this test starts and
stops. Timing is measured and printed, not asserted; what is asserted is correctness: no
non-retriable 5xx, nothing lost or duplicated, the aggregate exact, recovered by itself."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import psutil
import pytest

from tests import services
from tests.chaos import postgres, scenarios


@pytest.fixture(autouse=True)
def _needs_binaries() -> None:
    missing = [
        what
        for what, ok in (
            ("PostgreSQL (initdb, pg_ctl)", postgres.available()),
            ("redis-server", shutil.which("redis-server") is not None),
            ("root or the postgres user", os.geteuid() != 0 or shutil.which("runuser")),
        )
        if not ok
    ]
    if missing:
        reason = f"the chaos suite needs {', '.join(missing)}"
        pytest.fail(reason) if services.REQUIRE else pytest.skip(reason)


def _check(verdict: scenarios.Verdict) -> None:
    print(json.dumps(verdict.as_dict(), default=str))  # the measurements, in the test's output
    assert verdict.problems == []
    assert verdict.errors_5xx == 0
    assert verdict.recovery_s is not None
    assert psutil.Process().children(recursive=True) == []  # every process it started is gone
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("pamtalk-chaos-pg-" in part for part in p.info["cmdline"] or ())
    ]
    assert leftovers == []


def test_database_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    verdict = scenarios.database_restart(tmp_path)
    _check(verdict)
    assert verdict.lost == 0 and verdict.duplicated == 0
    assert verdict.measured["readyz_503_during_outage"]
    assert verdict.measured["during_outage"]  # the load did meet the outage


def test_redis_loss_keeps_api_keys_working(tmp_path: Path) -> None:
    verdict = scenarios.redis_loss(tmp_path)
    _check(verdict)
    assert verdict.measured["api_key_failures"] == 0


def test_overload_sheds_with_retriable_answers(tmp_path: Path) -> None:
    verdict = scenarios.overload(tmp_path)
    _check(verdict)
    assert verdict.measured["shed"] > 0
