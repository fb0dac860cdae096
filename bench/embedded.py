"""The seed's peak and spike on the embedded default (``pamtalk init && pamtalk serve``:
SQLite, the in-process cache, one worker), for one or more versions of the code side by side.

What it does
    1. Models: the tiny champions of ``bench/loadtest.py`` (its MLflow store, reused).
    2. For each ``--code`` (``.`` = this working tree; a git ref = that commit, checked out
       with ``git worktree`` under the results folder and imported first via PYTHONPATH, the
       same virtual environment): a fresh SQLite database in a temporary folder, ``pamtalk
       init`` (migrate, seed 300 farms and 60,000 transactions), ``pamtalk serve`` on a free
       port with the defaults (1 worker, no Redis), then the runs one after another, each
       ``pamtalk loadtest`` (Locust on the same box) as ``bench/loadtest.py`` runs them:

       =====  ========  ======  ==========  ===========  ==============
       run    scenario  users   target RPS  ramp         scaled: s (ramp)
       =====  ========  ======  ==========  ===========  ==============
       peak   peak      5,000   100         exponential  90 (45)
       spike  spike     10,000  500         linear       90 (30)
       =====  ========  ======  ==========  ===========  ==============

    3. Writes ``summary.md`` and ``summary.json`` to ``bench/results/embedded/``; with
       ``--write`` also its generated part of docs/benchmarks.md (between
       ``<!-- BEGIN bench/embedded.py -->`` and its END line).

How to run
    From the repository root (nothing but this box is needed)::

        .venv/bin/python bench/embedded.py [--code HEAD~1 --code .] [--runs peak,spike]
                                           [--write]

Caveat: Locust runs on the same 2 cores as the server; the cores column says what each used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness, loadtest

ROOT = harness.ROOT
RESULTS = harness.RESULTS / "embedded"
SECTION = docs.section_name(__file__)
RUNS = tuple(r for r in loadtest.RUNS if r.label in ("peak", "spike"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--code", action="append", help="'.' (this tree, the default) or a git ref; repeatable"
    )
    parser.add_argument("--runs", default="peak,spike", help="which runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in the docs")
    parser.add_argument(
        "--from-summary", action="store_true", help="no runs: report the last summary.json again"
    )
    args = parser.parse_args(argv)
    args.code = args.code or ["."]
    # run_one's knobs (bench/loadtest.py): scaled durations, nothing added.
    args.full, args.loadtest_args = False, ""
    return args


def say(message: str) -> None:
    harness.say(f"[embedded] {message}")


def checkout(code: str, out: Path) -> tuple[Path, str]:
    """(the folder whose ``pamtalk`` package runs, its label: the commit's short hash)."""
    if code == ".":
        return ROOT, "working tree"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = out / f"code-{commit}"
    if not tree.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True
        )
    return tree, commit


def server_env(code_dir: Path, data: Path, models: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(code_dir),
        "PAMTALK_ENV": "dev",
        "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{data}/pamtalk.db",
        "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{models}/mlflow.db",
        "PAMTALK_ADMIN_API_KEY": secrets.token_hex(24),
        "PAMTALK_LOG_LEVEL": "WARNING",
        # As bench/loadtest.py: the run logs in 41 users from one address within seconds.
        "PAMTALK_RATE_LIMIT_AUTH": "1000/minute",
    }
    for unset in ("PROMETHEUS_MULTIPROC_DIR", "PAMTALK_CELERY_BROKER_URL", "PAMTALK_REDIS_URL"):
        env.pop(unset, None)
    return env


def runs_of(
    code: str, chosen: list[loadtest.Run], args: argparse.Namespace
) -> list[dict[str, Any]]:
    code_dir, label = checkout(code, args.out)
    results = []
    with tempfile.TemporaryDirectory(prefix="pamtalk-embedded-") as data:
        env = server_env(code_dir, Path(data), args.out.parent / "loadtest" / "mlflow")
        harness.run_step(f"pamtalk init ({label})", [loadtest.PAMTALK, "init"], env)
        log = args.out / f"server-{label.replace(' ', '-')}.log"
        with harness.pamtalk_serve(env, log, workers=1, timeout=loadtest.READY_TIMEOUT_S) as (
            url,
            proc,
        ):
            say(f"{label}: serving on {url} (SQLite, 1 worker)")
            for run in chosen:
                time.sleep(loadtest.PAUSE_S)
                run_args = argparse.Namespace(**vars(args))
                run_args.out = args.out / label.replace(" ", "-")
                result = loadtest.run_one(run, url, proc.pid, run_args)
                results.append(result | {"run": f"{run.label} ({label})"})
    return results


def served(results: list[dict[str, Any]]) -> str:
    """What the steady phase answered 2xx, beside what was shed (503 past the in-flight
    cap, PAMTALK_MAX_IN_FLIGHT) or failed: Locust counts every non-2xx as an error."""
    lines = [
        "| run | steady req/s sent | answered 2xx req/s | not 2xx | p50 / p99 ms (all) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        steady = r["steady"]
        seconds = steady["to_s"] - steady["from_s"]
        ok = (steady["requests"] - steady["failures"]) / seconds
        lines.append(
            f"| {r['run']} | {steady['rps']:,.1f} | {ok:,.1f} | {steady['error_rate']:.1%} "
            f"| {steady['p50_ms']:,.1f} / {steady['p99_ms']:,.1f} |"
        )
    return "\n".join(lines)


def docs_section(report: dict[str, Any]) -> str:
    host = report["machine"]
    return f"""### Command

```sh
{report["command"]}
```

### Machine

{harness.machine_line(host)}; Locust on the same box (the last column gives the cores the
server, PostgreSQL (idle here), Locust and the whole box used). 1-minute load average at
start: {host["load_average_1m_at_start"]}.

### Date

{report["started_at"]}; {report["setup"]}.

### Results

{report["table_markdown"]}

The steady phase (after the ramp) of the same runs:

{served(report["runs"])}"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [r for r in RUNS if r.label in args.runs.split(",")]
    if not chosen:
        raise SystemExit(f"--runs: choose from {', '.join(r.label for r in RUNS)}")
    if args.write:
        docs.check_section(SECTION)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_summary:
        report = json.loads((args.out / "summary.json").read_text())
        print(docs_section(report))
        if args.write:
            docs.write_section(SECTION, docs_section(report))
        return 0
    started, host = dt.datetime.now(dt.UTC), harness.machine()
    say(f"{started:%Y-%m-%d %H:%M} UTC, load average {host['load_average_1m_at_start']:.2f}")
    models = args.out.parent / "loadtest" / "mlflow"
    prepare = [sys.executable, "-c", loadtest.PREPARE_MODELS, str(models)]
    harness.run_step("models (tiny champions)", prepare, dict(os.environ))

    results = [result for code in args.code for result in runs_of(code, chosen, args)]
    table = loadtest.markdown(results)
    setup = (
        f"{host['cpus']} cpus; `pamtalk serve` defaults (SQLite, 1 worker, in-process cache); "
        "scaled-down durations; code: " + ", ".join(args.code)
    )
    (args.out / "summary.md").write_text(f"{started:%Y-%m-%d %H:%M} UTC; {setup}\n\n{table}\n")
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": harness.command_line(__file__),
        "machine": host,
        "setup": setup,
        "table_markdown": table,
        "runs": results,
    }
    harness.write_json(args.out / "summary.json", report)
    print(f"\n{setup}\n\n{table}\n")
    if args.write:
        docs.write_section(SECTION, docs_section(report))
        say(f"updated: {docs.DOCS.relative_to(ROOT)}")
    return 0 if all(r["verdict"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
