"""Fault-injection scenarios: each a real fault on a real process the run started itself.

Runbook:
    make chaos                                  # every scenario, summary in var/chaos/summary.json
    .venv/bin/python -m bench.chaos redis_loss  # one or more scenarios by name

Each scenario (tests/chaos/scenarios.py) starts its own PostgreSQL (initdb + pg_ctl on a spare
port), redis-server where it needs one, and ``pamtalk serve``; puts load on it from a bounded
client; injects its fault; and gives a verdict. Exit 0 only if every scenario passed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench import harness
from tests.chaos.scenarios import SCENARIOS, Verdict

SUMMARY = harness.ROOT / "var" / "chaos" / "summary.json"


def run(names: list[str], folder: Path) -> list[Verdict]:
    verdicts = []
    for name in names:
        harness.say(f"--- {name}")
        started = time.perf_counter()
        try:
            verdict = SCENARIOS[name](folder)
        except Exception as exc:  # a scenario that could not run is a failed one
            verdict = Verdict(name, problems=[f"{type(exc).__name__}: {exc}"[:2000]])
        verdict.measured["scenario_s"] = round(time.perf_counter() - started, 1)
        harness.say(json.dumps(verdict.as_dict(), default=str))
        verdicts.append(verdict)
    return verdicts


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        harness.say(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
        return 2
    with tempfile.TemporaryDirectory(prefix="pamtalk-chaos-") as folder:
        verdicts = run(names, Path(folder))
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps([v.as_dict() for v in verdicts], indent=2, default=str) + "\n")
    for v in verdicts:
        state = "PASS" if v.passed else "FAIL"
        print(
            f"{state} {v.scenario}: requests={v.requests} errors_5xx={v.errors_5xx} "
            f"lost={v.lost} duplicated={v.duplicated} recovery_s={v.recovery_s}"
            + (f" problems={v.problems}" if v.problems else "")
        )
    print(f"summary: {SUMMARY.relative_to(harness.ROOT)}")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
