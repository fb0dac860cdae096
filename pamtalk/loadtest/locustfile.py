"""The Locust side of ``pamtalk loadtest``: one user class, one load shape, one sample log.

Not imported by ``pamtalk``: Locust monkey-patches the standard library with gevent as it is
imported. ``pamtalk loadtest`` runs it headless in a subprocess::

    python -m locust -f <this file> --headless --host URL --html ... --csv ...

with ``PAMTALK_LOADTEST_PLAN`` naming a JSON file written by ``pamtalk.loadtest.run``: the
load (:class:`~pamtalk.loadtest.scenarios.Load`), the fixtures (API keys, farms, prices), the
run id, and where to write every request as a CSV row (start time relative to the start of
the test, endpoint, milliseconds, ok, status, error) for the report.

* :class:`PlatformUser`: a ``FastHttpUser`` (one keep-alive connection) standing for
  ``users / greenlets`` platform users, on its own schedule of start times (Poisson or paced,
  see :mod:`pamtalk.loadtest.scenarios`); each request is the
  next slot of the mix's 100-slot cycle (shared by all users, so every 100 requests have the
  exact 70/20/10 mix), sent with the API key of the endpoint's role.
* :class:`ScenarioShape`: grows the users along the scenario's ramp, holds, stops at the end.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpUser

from pamtalk.loadtest.prepare import Fixtures
from pamtalk.loadtest.requests import Requests
from pamtalk.loadtest.scenarios import MIX, Load, schedule

PLAN_ENV = "PAMTALK_LOADTEST_PLAN"
SAMPLE_FIELDS = ("t", "endpoint", "ms", "ok", "status", "error")


def _read_plan() -> dict[str, Any]:
    path = os.environ.get(PLAN_ENV)
    if not path:
        raise RuntimeError(f"run this through `pamtalk loadtest` ({PLAN_ENV} is not set)")
    plan: dict[str, Any] = json.loads(Path(path).read_text())
    return plan


PLAN = _read_plan()
LOAD = Load.from_dict(PLAN["load"])
DATA = Fixtures.from_dict(PLAN["fixtures"])
RUN_ID = str(PLAN["run_id"])
SAMPLES = Path(PLAN["samples"])

INTERVAL = 1 / LOAD.rate_per_greenlet  # seconds between one Locust user's requests

_slots = itertools.cycle(schedule(MIX))
_user_numbers = itertools.count()


# --- every request, for the report -----------------------------------------------------------


@dataclass
class _Log:
    started: float = field(default_factory=time.time)
    rows: list[tuple[float, str, float, int, int, str]] = field(default_factory=list)


_log = _Log()


def _on_test_start(**_: Any) -> None:
    _log.started = time.time()
    _log.rows.clear()


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    exception: BaseException | None = None,
    response: Any = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    began = start_time if start_time is not None else time.time() - response_time / 1000
    status = int(getattr(response, "status_code", 0) or 0)
    error = "" if exception is None else f"{type(exception).__name__}: {exception}"[:200]
    _log.rows.append(
        (
            round(began - _log.started, 4),
            f"{request_type} {name}",
            round(response_time, 3),
            int(exception is None),
            status,
            error,
        )
    )


def _on_quitting(**_: Any) -> None:
    with SAMPLES.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SAMPLE_FIELDS)
        writer.writerows(_log.rows)


# Locust's EventHook.add_listener is untyped: registered by call, not as decorators.
events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
events.request.add_listener(_on_request)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]


class PlatformUser(FastHttpUser):
    """``users / greenlets`` of the seed's users behind one connection."""

    concurrency = 1  # one connection per Locust user
    connection_timeout = 10.0
    network_timeout = 30.0

    def on_start(self) -> None:
        number = next(_user_numbers)
        self.rng = random.Random(f"{RUN_ID}-{number}")
        # The first request at a random moment: the shape spawns users on its 1 s ticks.
        first = self._gap() if LOAD.arrivals == "poisson" else self.rng.uniform(0, INTERVAL)
        time.sleep(first)  # gevent's: only this user waits
        self.due = time.perf_counter()
        self.requests = Requests(DATA, self.rng, f"{RUN_ID}-{number}")
        self.keys = {
            "buyer": DATA.buyers[number % len(DATA.buyers)].key,
            "farmer": DATA.farmers[number % len(DATA.farmers)].key,
        }

    def _gap(self) -> float:
        if LOAD.arrivals == "poisson":
            return self.rng.expovariate(LOAD.rate_per_greenlet)
        return INTERVAL

    def wait_time(self) -> float:
        """Until the next start time; none when behind (and no catching up)."""
        now = time.perf_counter()
        self.due = max(self.due + self._gap(), now)
        return self.due - now

    @task
    def next_request(self) -> None:
        endpoint = MIX[next(_slots)]
        method, route = endpoint.name.split(" ", 1)
        request = self.requests.build(endpoint.name)
        headers = {"X-API-Key": self.keys[endpoint.role], **request.headers}
        with self.client.request(
            method,
            request.path,
            name=route,
            json=request.body,
            headers=headers,
            catch_response=True,
        ) as response:
            if response.status_code == endpoint.status:
                response.success()
            elif response.status_code == 0:  # no answer: refused, reset, timed out
                error = getattr(response, "error", None)
                response.failure(f"no response: {type(error).__name__} {error}")
            else:
                response.failure(f"HTTP {response.status_code} {_error_code(response.text)}")


def _error_code(text: str | None) -> str:
    try:
        return str(json.loads(text or "")["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return (text or "")[:80]


class ScenarioShape(LoadTestShape):
    """The scenario's ramp, in Locust users; ``None`` (stop) once the duration is over."""

    def tick(self) -> tuple[int, float] | None:
        t = time.perf_counter() - float(self.start_time)  # reset when the test starts
        if t >= LOAD.duration:
            return None
        target = LOAD.greenlets_at(t + 1)  # where to be in a second
        running = self.runner.user_count if self.runner is not None else 0
        return target, float(max(1, abs(target - running)))
