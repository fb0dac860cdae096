"""What a load test measured: statistics from every request, tables, the latency plot.

The numbers come from the sample log the Locust side writes (every request: when it started
relative to the start of the test, its endpoint, its time in ms as Locust timed it, success,
status, error), not from Locust's bucketed percentiles, so that the steady phase can be cut
out exactly. Percentiles are nearest-rank over all requests, failures included (as Locust
counts them). Locust's own HTML report and CSVs sit next to these in the report folder.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pamtalk.loadtest.scenarios import MIX, Load
from pamtalk.loadtest.slo import Check


@dataclass(frozen=True)
class Sample:
    t: float  # seconds from the start of the test to the request's start
    endpoint: str
    ms: float
    ok: bool
    status: int
    error: str


def read_samples(path: Path) -> list[Sample]:
    with path.open(newline="") as rows:
        return [
            Sample(
                t=float(row["t"]),
                endpoint=row["endpoint"],
                ms=float(row["ms"]),
                ok=row["ok"] == "1",
                status=int(row["status"]),
                error=row["error"],
            )
            for row in csv.DictReader(rows)
        ]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when empty."""
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def stats(samples: Iterable[Sample], seconds: float) -> dict[str, Any]:
    chosen = list(samples)
    times = sorted(s.ms for s in chosen)
    failures = sum(not s.ok for s in chosen)
    return {
        "requests": len(chosen),
        "failures": failures,
        "error_rate": failures / len(chosen) if chosen else math.nan,
        "rps": round(len(chosen) / seconds, 2) if seconds > 0 else math.nan,
        "mean_ms": _ms(sum(times) / len(times)) if times else None,
        "p50_ms": _ms(percentile(times, 50)),
        "p90_ms": _ms(percentile(times, 90)),
        "p95_ms": _ms(percentile(times, 95)),
        "p99_ms": _ms(percentile(times, 99)),
        "max_ms": _ms(times[-1]) if times else None,
    }


def summarize(samples: Sequence[Sample], load: Load) -> dict[str, Any]:
    """Overall (whole run), steady (after the ramp), per endpoint, errors, and a timeline.
    Requests started after the duration (the shape stops at its next tick) are left out."""
    late = sum(s.t >= load.duration for s in samples)
    samples = [s for s in samples if s.t < load.duration]
    steady_window = load.duration - load.ramp
    steady = stats((s for s in samples if load.ramp <= s.t < load.duration), steady_window)
    steady |= {
        "from_s": load.ramp,
        "to_s": load.duration,
        "target_rps": load.rps,
        "rps_ratio": round(steady["rps"] / load.rps, 4),
    }
    total = len(samples) or 1
    endpoints = []
    names = [e.name for e in MIX] + sorted({s.endpoint for s in samples} - {e.name for e in MIX})
    kinds = {e.name: (e.kind, e.weight / 100) for e in MIX}
    for name in names:
        hits = [s for s in samples if s.endpoint == name]
        kind, expected = kinds.get(name, ("other", 0.0))
        endpoints.append(
            {"endpoint": name, "kind": kind, "expected_share": expected}
            | {"share": round(len(hits) / total, 4)}
            | stats(hits, load.duration)
        )
    errors = Counter((s.endpoint, s.error) for s in samples if not s.ok)
    return {
        "overall": stats(samples, load.duration),
        "steady": steady,
        "endpoints": endpoints,
        "errors": [
            {"endpoint": endpoint, "error": error, "count": count}
            for (endpoint, error), count in errors.most_common(20)
        ],
        "timeline": timeline(samples, load),
        "left_out_after_end": late,
    }


def timeline(samples: Sequence[Sample], load: Load, step: float = 1.0) -> list[dict[str, Any]]:
    """Per ``step`` seconds of start time: requests, failures, latency percentiles, and the
    target rate (the shape aims a second ahead: the users due at the end of the step)."""
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(int(max(s.t, 0.0) // step), []).append(s)
    rows = []
    for i in range(math.ceil(load.duration / step)):
        hits = buckets.get(i, [])
        times = sorted(s.ms for s in hits)
        rows.append(
            {
                "t": round(i * step, 3),
                "rps": round(len(hits) / step, 2),
                "target_rps": round(load.target_rps_at((i + 1) * step), 2),
                "failures": sum(not s.ok for s in hits),
                "p50_ms": _ms(percentile(times, 50)),
                "p95_ms": _ms(percentile(times, 95)),
                "p99_ms": _ms(percentile(times, 99)),
            }
        )
    return rows


# --- tables (Markdown, to paste into docs/benchmarks.md) ---------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def endpoint_table(summary: dict[str, Any]) -> str:
    lines = [
        "| endpoint | share (mix) | requests | failures | req/s "
        "| p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*summary["endpoints"], {"endpoint": "**all**", **summary["overall"]}]
    for row in rows:
        share = (
            f"{row['share'] * 100:.1f} % ({row['expected_share'] * 100:.0f} %)"
            if "share" in row
            else "100 %"
        )
        lines.append(
            f"| {row['endpoint']} | {share} | {row['requests']:,} | {row['failures']:,} | "
            f"{_num(row['rps'])} | {_num(row['p50_ms'])} | {_num(row['p95_ms'])} | "
            f"{_num(row['p99_ms'])} | {_num(row['max_ms'])} |"
        )
    return "\n".join(lines)


def checks_table(checks: Sequence[Check]) -> str:
    lines = ["| SLO | rule | measured | |", "|---|---|---:|---|"]
    for c in checks:
        lines.append(f"| {c.source} | {c.rule} | {c.shown} | {'pass' if c.passed else 'FAIL'} |")
    return "\n".join(lines)


# --- the plot ----------------------------------------------------------------------------------


def plot(summary: dict[str, Any], load: Load, checks: Sequence[Check], path: Path) -> None:
    """Latency percentiles per second over achieved and target req/s, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["timeline"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for key, colour in (("p50_ms", "tab:green"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        points = [(r["t"], r[key]) for r in rows if r[key] is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            top.plot(xs, ys, label=key.removesuffix("_ms"), color=colour, linewidth=1.2)
    p99_limits = sorted({c.limit for c in checks if c.metric == "p99_ms"})
    for limit in p99_limits[:1]:  # the strictest; the seed's 5 s would flatten the plot
        top.axhline(limit, color="tab:red", linestyle="--", linewidth=0.8, label=f"p99 < {limit:g}")
    top.set_yscale("log")
    top.set_ylabel("latency per second of start time (ms)")
    top.grid(True, which="both", alpha=0.3)
    bottom.plot(t, [r["rps"] for r in rows], label="achieved", color="tab:blue", linewidth=1.2)
    bottom.plot(
        t, [r["target_rps"] for r in rows], label="target", color="black", linestyle="--", lw=0.8
    )
    failures = [r["failures"] for r in rows]
    if any(failures):
        bottom.bar(t, failures, width=1.0, color="tab:red", alpha=0.6, label="failures")
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel("seconds since start")
    bottom.grid(True, alpha=0.3)
    for axis in (top, bottom):
        if load.ramp > 0:
            axis.axvline(load.ramp, color="grey", linestyle=":", linewidth=1)
        axis.legend(loc="upper left", fontsize=8)
    overall = summary["overall"]
    verdict = "pass" if all(c.passed for c in checks) else "FAIL"
    top.set_title(
        f"{load.scenario}: {load.users:,} users, {load.rps:g} req/s target, {load.curve} ramp "
        f"{load.ramp:g} s | p99 {_num(overall['p99_ms'])} ms, "
        f"{overall['failures']} errors | {verdict}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
