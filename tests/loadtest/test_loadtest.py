"""``pamtalk loadtest``: each scenario for a few seconds against a live server (a seeded
SQLite database, tiny trained models), as processes: the command runs Locust in a process of
its own, so gevent's monkey-patching stays out of pytest. Plus the pure parts: the mix, the
ramps, the verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pamtalk.loadtest import report, slo
from pamtalk.loadtest.scenarios import MIX, SCENARIOS, Load, schedule
from tests import services
from tests.conftest import ModelStore

BIN = Path(sys.executable).parent
PAMTALK = str(BIN / "pamtalk")


# --- the pure parts ---------------------------------------------------------------------------


def test_every_100_requests_have_the_seed_mix_and_every_endpoint_comes_early() -> None:
    order = schedule()
    assert len(order) == 100
    shares = {kind: 0 for kind in ("read", "write", "ai")}
    for i in order:
        shares[MIX[i].kind] += 1
    assert shares == {"read": 70, "write": 20, "ai": 10}
    first = {MIX[i].name for i in order[:16]}
    assert first == {e.name for e in MIX}


def test_users_map_to_locust_users_and_ramps() -> None:
    spike = Load.plan("spike")
    assert (spike.users, spike.rps, spike.ramp, spike.greenlets) == (10_000, 500, 30, 500)
    assert spike.greenlets * spike.rate_per_greenlet == pytest.approx(500)
    assert spike.seconds_between_requests == 20  # per simulated user
    assert spike.greenlets_at(0) == 1
    assert spike.greenlets_at(15) == 250
    assert spike.greenlets_at(30) == spike.greenlets_at(299) == 500

    peak = Load.plan("peak", duration=90, ramp=40)
    assert peak.curve == "exponential" and peak.greenlets == 100
    assert [peak.greenlets_at(t) for t in (0, 10, 20, 30, 40)] == [1, 3, 10, 32, 100]

    small = Load.plan("basic", users=5, rps=50)
    assert small.greenlets == 5 and small.rate_per_greenlet == 10
    with pytest.raises(ValueError, match=r"--ramp 10 s\) must be shorter than the duration"):
        Load.plan("basic", duration=10, ramp=10)
    # a short run keeps the scenario's ramp share (basic: 60 s of 300) instead of refusing
    assert Load.plan("basic", duration=20).ramp == 4
    assert Load.plan("spike", duration=30).ramp == 3
    assert Load.plan("basic", duration=20, ramp=0).ramp == 0
    with pytest.raises(ValueError, match="unknown scenario"):
        Load.plan("soak")
    with pytest.raises(ValueError, match="arrivals"):
        Load.plan("basic", arrivals="bursts")
    assert Load.from_dict(spike.to_dict()) == spike
    assert set(SCENARIOS) == {"basic", "peak", "spike"}


def _summary(p99: float, failures: int, requests: int, rps_ratio: float) -> dict[str, object]:
    return {
        "overall": {
            "p50_ms": p99 / 4,
            "p95_ms": p99 / 2,
            "p99_ms": p99,
            "failures": failures,
            "requests": requests,
            "error_rate": failures / requests,
        },
        "steady": {"rps_ratio": rps_ratio},
    }


def test_verdict_takes_the_seed_slos_and_ours(tmp_path: Path) -> None:
    spike = slo.targets("spike")
    good = slo.evaluate(_summary(200, 0, 10_000, 0.99), spike)
    assert all(c.passed for c in good) and {c.source for c in good} == {"seed", "ours"}

    slow = slo.evaluate(_summary(300, 0, 10_000, 0.99), spike)
    assert [c.rule for c in slow if not c.passed] == ["p99 < 250 ms"]  # the seed's still pass

    one_error = slo.evaluate(_summary(200, 1, 10_000, 0.99), spike)
    assert [(c.source, c.metric) for c in one_error if not c.passed] == [("ours", "max_errors")]

    short = slo.evaluate(_summary(50, 0, 10_000, 0.9), slo.targets("basic"))
    assert [c.metric for c in short if not c.passed] == ["min_rps_ratio"]

    file = tmp_path / "slo.toml"
    file.write_text("[seed]\nmin_rps_ratio = 0.5\n\n[ours.spike]\np99_ms = 400\n")
    relaxed = slo.targets("spike", file)
    assert relaxed["ours"].p99_ms == 400 and relaxed["ours"].max_errors == 0
    assert all(c.passed for c in slo.evaluate(_summary(300, 0, 10_000, 0.9), relaxed))
    file.write_text("[ours.spike]\np99 = 400\n")
    with pytest.raises(ValueError, match="unknown keys"):
        slo.targets("spike", file)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 99) == 99
    assert report.percentile([7.0], 99) == 7


def test_the_command_keeps_locust_and_gevent_out_of_pamtalk() -> None:
    code = (
        "import sys, pamtalk.cli, pamtalk.loadtest.run;"
        "assert not {'locust', 'gevent'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- against a live server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``pamtalk serve`` on a seeded SQLite database with tiny trained champions."""
    folder = tmp_path_factory.mktemp("loadtest")
    env = {
        **os.environ,
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/pamtalk.db",
        "PAMTALK_MLFLOW_TRACKING_URI": model_store.copy(folder / "models"),
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        "PAMTALK_LOG_LEVEL": "WARNING",
    }
    env.pop("PAMTALK_REDIS_URL", None)
    for command in (["db", "upgrade"], ["db", "seed", "--farms", "40", "--transactions", "2000"]):
        subprocess.run([PAMTALK, *command], env=env, check=True, capture_output=True)
    port = services.free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PAMTALK, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    services.wait_until_up(f"{url}/readyz", process, log, timeout=60)
    yield url
    process.terminate()
    process.wait(timeout=20)


# basic must pass under SLOs nobody can miss without an error; spike must fail under one
# nobody can meet; peak is judged by the defaults, whichever way that goes on this machine.
SLO_FILES = {
    "basic": "[seed]\np50_ms = 1e6\np95_ms = 1e6\np99_ms = 1e6\nmin_rps_ratio = 0\n"
    "[ours.basic]\np99_ms = 1e6\n",
    "peak": None,
    "spike": "[ours.spike]\np99_ms = 0.001\n",
}


@pytest.mark.parametrize("scenario", ["basic", "peak", "spike"])
def test_scenario_runs_the_whole_mix_and_reports(
    server: str, scenario: str, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    command = [
        PAMTALK,
        "loadtest",
        "--scenario",
        scenario,
        "--users",
        "16",
        "--rps",
        "8",
        "--duration",
        "5",
        "--ramp",
        "2",
        "--identities",
        "2",
        "--target",
        server,
        "--report",
        str(out),
    ]
    arrivals = "poisson" if scenario == "peak" else "paced"
    command += ["--arrivals", arrivals]
    if SLO_FILES[scenario] is not None:
        (tmp_path / "slo.toml").write_text(SLO_FILES[scenario] or "")
        command += ["--slo", str(tmp_path / "slo.toml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == scenario
    assert summary["load"]["curve"] == SCENARIOS[scenario].curve
    assert summary["load"]["arrivals"] == arrivals
    assert summary["verdict"] == ("pass" if done.returncode == 0 else "fail")
    hits = {row["endpoint"]: row for row in summary["endpoints"]}
    assert set(hits) == {e.name for e in MIX}
    for endpoint in MIX:  # every request of the mix was sent, valid, as the right role
        assert hits[endpoint.name]["requests"] > 0, endpoint.name
    assert summary["overall"]["failures"] == 0, summary["errors"]
    assert summary["overall"]["requests"] >= 20
    if scenario == "basic":
        assert done.returncode == 0
    if scenario == "spike":
        failed = [(c["source"], c["metric"]) for c in summary["checks"] if not c["passed"]]
        assert done.returncode == 1 and ("ours", "p99_ms") in failed
    for artifact in ("locust.html", "latency.png", "locust_stats.csv", "samples.csv"):
        assert (out / artifact).stat().st_size > 0, artifact
    assert "| **all** |" in done.stdout and scenario in done.stdout
