"""The beat schedule: nightly scoring at 02:00 in Seoul (17:00 UTC the day before), for the
Seoul date. Computed with Celery's own schedule objects, as `pamtalk beat` would."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.beat import ScheduleEntry

from pamtalk.batching import tasks
from pamtalk.cli.worker import worker_app
from pamtalk.settings import Settings

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def celery() -> Iterator[Celery]:
    with worker_app(Settings(celery_broker_url=None)) as app:
        yield app


def nightly_entry(celery: Celery, last_run_at: datetime, now: datetime) -> ScheduleEntry:
    """The beat entry as the scheduler builds it from the app's configuration, with a clock
    of our choosing (on a copy: the configured schedule is shared)."""
    config = dict(celery.conf.beat_schedule["nightly-scoring"])
    config["schedule"] = copy.copy(config["schedule"])
    entry = ScheduleEntry(name="nightly-scoring", app=celery, last_run_at=last_run_at, **config)
    entry.schedule.nowfun = lambda: now
    return entry


def test_the_nightly_entry_runs_the_nightly_task_on_seoul_time(celery: Celery) -> None:
    assert set(celery.conf.beat_schedule) == {"nightly-scoring", "resume-stalled"}
    assert celery.conf.beat_schedule["resume-stalled"]["task"] == "pamtalk.resume_stalled"
    assert "pamtalk.resume_stalled" in celery.tasks
    assert celery.conf.beat_schedule["nightly-scoring"]["task"] == "pamtalk.nightly"
    assert celery.conf.timezone == "Asia/Seoul"
    entry = nightly_entry(celery, datetime(2026, 11, 25, 2, tzinfo=SEOUL), datetime.now(UTC))
    assert entry.task == "pamtalk.nightly"
    assert entry.schedule.tz == SEOUL
    assert "pamtalk.nightly" in celery.tasks


@pytest.mark.parametrize("zone", [SEOUL, UTC], ids=["seoul", "utc"])
def test_next_run_after_one_fifty_nine_is_two_o_clock_in_seoul(
    celery: Celery, zone: ZoneInfo
) -> None:
    """Whichever zone the clock reads in, the run is at 02:00 KST = 17:00 UTC the day
    before."""
    last = datetime(2026, 11, 25, 2, 0, tzinfo=SEOUL).astimezone(zone)  # yesterday's run
    now = datetime(2026, 11, 26, 1, 59, tzinfo=SEOUL).astimezone(zone)
    entry = nightly_entry(celery, last, now)

    due, next_check = entry.is_due()
    assert not due
    assert next_check == pytest.approx(60, abs=1)
    remaining = entry.schedule.remaining_estimate(last)
    assert remaining == timedelta(minutes=1)
    assert now + remaining == datetime(2026, 11, 26, 2, 0, tzinfo=SEOUL)
    assert now + remaining == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)

    # Half a minute past: due, and the next one is a day on.
    now = datetime(2026, 11, 25, 17, 0, 30, tzinfo=UTC).astimezone(zone)
    due, next_check = nightly_entry(celery, last, now).is_due()
    assert due
    assert next_check == pytest.approx(timedelta(days=1).total_seconds() - 30, abs=1)


def test_two_in_the_morning_utc_is_not_the_nightly_time(celery: Celery) -> None:
    """Not at 02:00 UTC (11:00 in Seoul): once run at 02:00 KST, the next is 15 hours on."""
    last = datetime(2026, 11, 26, 2, 0, tzinfo=SEOUL)
    now = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    due, next_check = nightly_entry(celery, last, now).is_due()
    assert not due
    assert next_check == pytest.approx(timedelta(hours=15).total_seconds(), abs=1)
    assert nightly_entry(celery, last, now).schedule.remaining_estimate(last) == timedelta(hours=15)


def test_the_nightly_task_scores_the_seoul_date(
    celery: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fired at 02:00 KST, when it is still the day before in UTC, `pamtalk.nightly` without a
    date plans the Seoul date's job (and launches it)."""
    planned: list[date] = []
    launched: list[int] = []

    class Planner:
        """The batch context's planning and launch, without a database or registry."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        async def plan_nightly(self, day: date, created_by: int | None = None) -> Any:
            planned.append(day)
            return SimpleNamespace(id=7)

        async def launch(self, job_id: int) -> None:
            launched.append(job_id)

    monkeypatch.setattr(tasks, "utcnow", lambda: datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
    monkeypatch.setattr(tasks, "BatchContext", Planner)
    assert celery.tasks["pamtalk.nightly"]() == 7
    assert planned == [date(2026, 11, 26)] and launched == [7]
