"""The report of bench/serving.py: its JSON, its Markdown tables and the generated part of the
serving section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import asdict
from typing import Any

from bench import harness
from bench.serving_load import Point, ServerRun
from bench.serving_setup import MODEL, Setup


def best_within_slo(run: ServerRun, slo_ms: float) -> Point | None:
    fine = [p for p in run.points if p.errors == 0 and p.p99_ms <= slo_ms]
    return max(fine, key=lambda p: p.per_s, default=None)


def points_table(runs: list[ServerRun]) -> str:
    lines = [
        "| server | concurrency | predictions/s | p50 ms | p99 ms | errors "
        "| CPU client | CPU server | CPU other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if run.status != "ok":
            lines.append(f"| {run.server} | not run: {run.reason} | | | | | | | |")
        lines += [
            f"| {p.server} | {p.concurrency} | {p.per_s:.1f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
            f"| {p.errors} | {p.client_cpu:.2f} | {p.server_cpu:.2f} | {p.other_cpu:.2f} |"
            for p in run.points
        ]
    return "\n".join(lines)


def ratio(ours: Point | None, peer: Point | None) -> str:
    if ours is None or peer is None or peer.per_s == 0:
        return "-"
    return f"{ours.per_s / peer.per_s:.2f}x"


def summary_table(runs: list[ServerRun], slo_ms: float) -> str:
    best = {run.server: best_within_slo(run, slo_ms) for run in runs}
    mine = [name for name in ("ours-local", "ours-ray") if name in best]
    lines = [
        f"| server | best predictions/s at p99 <= {slo_ms:g} ms | concurrency | p50 ms | p99 ms "
        + "".join(f"| {name} / this " for name in mine)
        + "|",
        "|---|---:|---:|---:|---:" + "|---:" * len(mine) + "|",
    ]
    for run in runs:
        point = best[run.server]
        cells = (
            f"{point.per_s:.1f} | {point.concurrency} | {point.p50_ms:.2f} | {point.p99_ms:.2f}"
            if point is not None
            else ("not run | | |" if run.status != "ok" else "none within the SLO | | |")
        )
        ratios = "".join(f"| {ratio(best[name], point)} " for name in mine)
        lines.append(f"| {run.server} | {cells} {ratios}|")
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace,
    setup: Setup,
    host: dict[str, Any],
    runs: list[ServerRun],
    took: tuple[float, float],  # (setup, whole run) in seconds
    command: str,
) -> dict[str, Any]:
    return {
        "benchmark": "serving",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": host,
        "setup_s": round(took[0]),
        "took_s": round(took[1]),
        "config": {
            "model": f"{MODEL} v{setup.version} (fp32 ONNX, {'tiny' if args.tiny else 'default'})",
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "slo_p99_ms": args.slo_ms,
            "client": "aiohttp, one session, a pool of N connections, closed loop",
        },
        "runs": [asdict(run) for run in runs],
        "summary_markdown": summary_table(runs, args.slo_ms),
        "points_markdown": points_table(runs),
    }


def docs_section(report: dict[str, Any]) -> str:
    """The generated part of the serving section of docs/benchmarks.md: command, machine,
    date and results. The introduction and the reading are written by hand around it."""
    host, cfg = report["machine"], report["config"]
    return f"""### Command

```sh
{report["command"]}
```

### Machine

{harness.machine_line(host)}.
**Shared:** the load generator runs on the same {host["cpus"]} cores as the server under test
(the CPU columns give the cores each used in the window), so every figure is a lower bound of
what the server does alone, and the client's share grows with the request rate. 1-minute load
average at start: {host["load_average_1m_at_start"]}.

### Date

{report["date"]}; model {cfg["model"]}; {cfg["duration_s"]:g} s measured after
{cfg["warmup_s"]:g} s warm-up per point; the whole run took {report["took_s"]} s, of which
{report["setup_s"]} s setting up (training the models when the store is new).

### Results

Best throughput with p99 <= {cfg["slo_p99_ms"]:g} ms and no errors, and how ours compares:

{report["summary_markdown"]}

Every point:

{report["points_markdown"]}"""
