"""One load test, end to end: what ``pamtalk loadtest`` does.

1. settle the load (:class:`~pamtalk.loadtest.scenarios.Load`) and the SLOs;
2. prepare: API keys for demo buyers and farmers, the seeded farms and prices (``prepare``);
3. run Locust headless in a subprocess on ``locustfile`` (gevent stays out of this process),
   which writes Locust's HTML report and CSVs and a log of every request;
4. summarize, judge, write ``summary.json`` and ``latency.png``, print the tables;
5. revoke the API keys.

Returns the exit code: 0 when every SLO passed, 1 when one failed. Raises
:class:`~pamtalk.loadtest.prepare.SetupError` or ``ValueError`` when it cannot run.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pamtalk.loadtest import prepare, report, slo
from pamtalk.loadtest.scenarios import Load

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STOP_TIMEOUT_S = 5  # users finish the request in flight when the test ends
GRACE_S = 120  # past the duration before the Locust process is killed


@dataclass(frozen=True)
class Options:
    scenario: str
    target: str
    report_dir: Path
    users: int | None = None
    rps: float | None = None
    duration: float | None = None
    ramp: float | None = None
    greenlets: int | None = None
    arrivals: str = "paced"
    identities: int = 20
    password: str = "pamtalk-demo"
    slo_file: Path | None = None


def describe(load: Load, target: str) -> str:
    return (
        f"{load.scenario}: {load.users:,} users at {load.rps:g} req/s against {target}, "
        f"{load.curve} ramp over {load.ramp:g} s, {load.duration:g} s in all, {load.arrivals} "
        f"arrivals. Locust: {load.greenlets} users x {load.rate_per_greenlet:.3g} req/s, each "
        f"standing for {load.users_per_greenlet:.3g} users (one request every "
        f"{load.seconds_between_requests:.3g} s per user)"
    )


def locust_command(target: str, report_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        target,
        "--html",
        str(report_dir / "locust.html"),
        "--csv",
        str(report_dir / "locust"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--loglevel",
        "WARNING",
    ]


def run(options: Options, say: Callable[[str], None] = print) -> int:
    load = Load.plan(
        options.scenario,
        users=options.users,
        rps=options.rps,
        duration=options.duration,
        ramp=options.ramp,
        greenlets=options.greenlets,
        arrivals=options.arrivals,
    )
    if options.identities < 1:
        raise ValueError("identities must be at least 1")
    limits = slo.targets(load.scenario, options.slo_file)
    out = options.report_dir
    out.mkdir(parents=True, exist_ok=True)
    samples = out / "samples.csv"
    samples.unlink(missing_ok=True)
    say(describe(load, options.target))

    fixtures = prepare.fixtures(options.target, options.identities, options.password, say)
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    try:
        generator_cpu, wall = _run_locust(load, fixtures, options.target, out, samples, say)
    finally:
        prepare.revoke(options.target, fixtures.buyers + fixtures.farmers)
    load_after = os.getloadavg()
    if not samples.exists():
        raise RuntimeError(f"Locust wrote no samples; see {out / 'locust.log'}")

    summary = report.summarize(report.read_samples(samples), load)
    checks = slo.evaluate(summary, limits)
    passed = all(c.passed for c in checks)
    summary = {
        "scenario": load.scenario,
        "verdict": "pass" if passed else "fail",
        "started_at": started_at.isoformat(timespec="seconds"),
        "target": options.target,
        "load": load.to_dict(),
        "checks": [asdict(c) | {"rule": c.rule} for c in checks],
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_before": round(load_before[0], 2),
            "load_average_1m_after": round(load_after[0], 2),
            "generator_cpu_cores": round(generator_cpu / wall, 2) if wall > 0 else None,
        },
        "artifacts": {
            "summary": "summary.json",
            "latency_plot": "latency.png",
            "locust_html": "locust.html",
            "locust_csv": "locust_stats.csv",
            "samples": "samples.csv",
            "log": "locust.log",
        },
        **summary,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    report.plot(summary, load, checks, out / "latency.png")

    steady = summary["steady"]
    say("")
    say(report.endpoint_table(summary))
    say("")
    say(
        f"steady phase ({load.ramp:g}-{load.duration:g} s): {steady['rps']:g} req/s of "
        f"{load.rps:g} ({steady['rps_ratio'] * 100:.1f} %); load generator used "
        f"{summary['machine']['generator_cpu_cores']} cores"
    )
    say("")
    say(report.checks_table(checks))
    say("")
    say(f"{load.scenario}: {'PASS' if passed else 'FAIL'}; report in {out}")
    return 0 if passed else 1


def _run_locust(
    load: Load,
    fixtures: prepare.Fixtures,
    target: str,
    out: Path,
    samples: Path,
    say: Callable[[str], None],
) -> tuple[float, float]:
    """Runs Locust to the end of the shape; returns (its CPU seconds, wall seconds)."""
    with tempfile.TemporaryDirectory(prefix="pamtalk-loadtest-") as tmp:
        plan = Path(tmp) / "plan.json"  # holds API keys: private, and gone afterwards
        plan.write_text(
            json.dumps(
                {
                    "load": load.to_dict(),
                    "fixtures": fixtures.to_dict(),
                    "run_id": uuid.uuid4().hex[:8],
                    "samples": str(samples.resolve()),
                }
            )
        )
        plan.chmod(0o600)
        env = {**os.environ, "PAMTALK_LOADTEST_PLAN": str(plan)}
        say(f"running Locust for {load.duration:g} s (log: {out / 'locust.log'}) ...")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        with (out / "locust.log").open("wb") as log:
            process = subprocess.Popen(
                locust_command(target, out), env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                code = process.wait(timeout=load.duration + GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RuntimeError(f"Locust did not stop; see {out / 'locust.log'}") from None
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                process.wait()
                raise
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        tail = (out / "locust.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Locust exited with {code}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall
